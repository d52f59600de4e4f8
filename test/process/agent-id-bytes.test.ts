// An X-Agent-ID with bytes outside ASCII, sent as raw UTF-8 on a raw socket (fetch would refuse to send
// it): a 400 in the API family's error shape naming the header, and no agent created under a trimmed
// id. Finding 8 of issue 13: `🤖agent` used to become `agent` and share that agent's cache.
import t from 'tap';
import { connect } from 'node:net';
import { tinyModelPath } from '../helpers/model.js';
import { startServer } from '../helpers/server.js';

const modelPath = await tinyModelPath();
const server = await startServer(['serve', '--port', '0', '--model', modelPath, '--model-id', 'tiny', '--threads', '1', '--context-size', '1024']);
t.teardown(() => server.stop());

interface RawResponse {
  status: number;
  body: Record<string, unknown>;
}

/** One POST with `Connection: close` whose `headerName` value is written as the given raw bytes. */
function postWithRawHeader(path: string, headerName: string, value: Buffer, body: unknown): Promise<RawResponse> {
  const payload = Buffer.from(JSON.stringify(body));
  const request = Buffer.concat([
    Buffer.from(`POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nConnection: close\r\n${headerName}: `),
    value,
    Buffer.from(`\r\nContent-Length: ${payload.length}\r\n\r\n`),
    payload,
  ]);
  return new Promise((resolve, reject) => {
    const socket = connect(server.port, '127.0.0.1');
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', reject);
    socket.on('close', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      const status = Number(/^HTTP\/1\.1 (\d{3}) /.exec(text)?.[1] ?? 0);
      const bodyText = text.slice(text.indexOf('\r\n\r\n') + 4);
      // A chunked body would need decoding; every error here has a Content-Length.
      try {
        resolve({ status, body: JSON.parse(bodyText) as Record<string, unknown> });
      } catch {
        resolve({ status, body: { unparsed: text } });
      }
    });
    socket.write(request);
  });
}

const user = [{ role: 'user', content: 'hi' }];
const chat = { model: 'tiny', messages: user, max_tokens: 2 };
const robotAgent = Buffer.from('🤖agent', 'utf8');

t.test('OpenAI: `🤖agent` as UTF-8 bytes is a 400 naming X-Agent-ID', async (t) => {
  const { status, body } = await postWithRawHeader('/v1/chat/completions', 'X-Agent-ID', robotAgent, chat);
  t.equal(status, 400, JSON.stringify(body));
  const error = body.error as Record<string, unknown> | undefined;
  t.equal(error?.type, 'invalid_request_error');
  t.equal(error?.code, 'ERR_BAD_REQUEST');
  t.equal(error?.param, 'X-Agent-ID');
});

t.test('Anthropic: the same id in X-Session-ID is a 400 in the Anthropic shape', async (t) => {
  const { status, body } = await postWithRawHeader('/v1/messages', 'X-Session-ID', robotAgent, chat);
  t.equal(status, 400, JSON.stringify(body));
  t.equal(body.type, 'error');
  t.equal((body.error as Record<string, unknown> | undefined)?.type, 'invalid_request_error');
});

t.test('one latin1 byte (0xE9) is refused too, and no agent was made under a trimmed id', async (t) => {
  const { status } = await postWithRawHeader('/v1/chat/completions', 'X-Agent-ID', Buffer.from([0x61, 0x67, 0xe9]), chat);
  t.equal(status, 400, '`ag\\xE9`');
  for (const trimmed of ['agent', 'ag']) {
    const response = await fetch(`${server.url}/v1/agents/${trimmed}`);
    t.equal(response.status, 404, `no agent ${trimmed}`);
    await response.arrayBuffer();
  }
});

t.test('the same raw request with an ASCII id is served: the refusal is the bytes, not the socket', async (t) => {
  const { status, body } = await postWithRawHeader('/v1/chat/completions', 'X-Agent-ID', Buffer.from('agent-ascii'), chat);
  t.equal(status, 200, JSON.stringify(body));
  t.equal(body.object, 'chat.completion');
});
