// The HTTP front as real networks and unlucky clients meet it, on raw sockets against the real
// server: request lines split across TCP segments, pipelined and eager requests, malformed headers,
// bodies shorter than their Content-Length, unfinished chunked bodies, slow senders, oversized
// headers and bodies, and a thousand idle connections. Every error is the API's JSON shape and is
// followed by a close; nothing waits for an idle timeout to end a broken exchange.
import t, { type Test } from 'tap';
import { connect, type Socket } from 'node:net';
import { tinyModelPath } from '../helpers/model.js';
import { rawRequest, sendRaw, type RawResponse } from '../helpers/raw-http.js';
import { startServer } from '../helpers/server.js';

const modelPath = await tinyModelPath();
const common = ['serve', '--port', '0', '--model', modelPath, '--model-id', 'tiny', '--threads', '1', '--context-size', '2048', '--max-sequences', '4'];
// Long client timeouts: an answer that comes back here was not produced by a timeout.
const server = await startServer([...common, '--headers-timeout', '600', '--request-timeout', '600', '--max-body-bytes', '65536']);
const quick = await startServer([...common, '--headers-timeout', '1', '--request-timeout', '2']);
t.teardown(async () => {
  await server.stop();
  await quick.stop();
});

const chatBody = (content: string): string => JSON.stringify({ model: 'tiny', messages: [{ role: 'user', content }], max_tokens: 6, temperature: 0 });
const chat = (content: string): string => rawRequest('POST', '/v1/chat/completions', chatBody(content));
const live = rawRequest('GET', '/health/live');

function contentOf(response: RawResponse | undefined): string {
  return (JSON.parse(response?.body ?? '{}') as { choices: { message: { content: string } }[] }).choices[0]?.message.content ?? '';
}

function assertJsonError(t: Test, response: RawResponse | undefined, status: number, code: string): void {
  t.equal(response?.status, status, `status ${status}`);
  t.match(response?.headers['content-type'], /^application\/json/);
  t.match(JSON.parse(response?.body ?? '{}'), { error: { code, type: 'invalid_request_error', message: String } });
}

const reference = contentOf((await sendRaw(server.port, [chat('split')], { responses: 1 })).responses[0]);

t.test('a request line split across two TCP segments is served, wherever the split falls', async (t) => {
  const request = chat('split');
  for (const at of [1, 4, 10, 20, 35]) {
    const { responses } = await sendRaw(server.port, [request.slice(0, at), request.slice(at)], { gapMs: 150, responses: 1 });
    t.equal(responses[0]?.status, 200, `split at byte ${at}`);
    t.equal(contentOf(responses[0]), reference, `split at byte ${at}: the same greedy output`);
  }
});

t.test('pipelined requests are all answered, in order', async (t) => {
  const postThenGet = await sendRaw(server.port, [chat('split') + live], { responses: 2 });
  t.same(
    postThenGet.responses.map((r) => r.status),
    [200, 200],
  );
  t.equal(contentOf(postThenGet.responses[0]), reference);
  t.same(JSON.parse(postThenGet.responses[1]?.body ?? '{}'), { status: 'alive' });

  const postThenPost = await sendRaw(server.port, [chat('split') + chat('split')], { responses: 2 });
  t.same(postThenPost.responses.map(contentOf), [reference, reference], 'POST + POST in one write');

  const eager = await sendRaw(server.port, [chat('split'), live], { gapMs: 100, responses: 2 });
  t.same(
    eager.responses.map((r) => r.status),
    [200, 200],
    'a GET sent 100 ms after a POST, before its answer',
  );
  t.equal(contentOf(eager.responses[0]), reference);
});

t.test('bad header bytes get 400 in the JSON error shape, then a close', async (t) => {
  const cases: [string, string][] = [
    ['NUL in a value', 'X-Test: a\u0000b'],
    ['CR in a value', 'X-Test: a\rb'],
    ['a space in a name', 'X Test: a'],
    ['a name with no value separator', 'X-Test'],
  ];
  for (const [name, header] of cases) {
    const exchange = await sendRaw(server.port, [`GET /health/live HTTP/1.1\r\nHost: x\r\n${header}\r\n\r\n`]);
    assertJsonError(t, exchange.responses[0], 400, 'ERR_MALFORMED_HTTP');
    t.ok(exchange.closed, `${name}: the connection is closed`);
  }
  const badChunk = await sendRaw(server.port, ['POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n']);
  assertJsonError(t, badChunk.responses[0], 400, 'ERR_MALFORMED_HTTP');
  t.ok(badChunk.closed, 'bad chunk framing: closed');
});

t.test('a chunk extension is valid HTTP and is served', async (t) => {
  const body = chatBody('split');
  const head = 'POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n';
  const chunked = `${body.length.toString(16)};name=value\r\n${body}\r\n0\r\n\r\n`;
  const { responses } = await sendRaw(server.port, [head + chunked], { responses: 1 });
  t.equal(responses[0]?.status, 200);
  t.equal(contentOf(responses[0]), reference);
});

t.test('headers over 32 KiB get 431 in the JSON shape, then a close', async (t) => {
  const exchange = await sendRaw(server.port, [`GET /health/live HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(40_000)}\r\n\r\n`]);
  assertJsonError(t, exchange.responses[0], 431, 'ERR_HEADERS_TOO_LARGE');
  t.ok(exchange.closed);
});

t.test('an unfinished request gets 408 once its time is up, then a close', async (t) => {
  const head = 'POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n';
  const short = await sendRaw(quick.port, [`${head}Content-Length: 100\r\n\r\n{"model":`]);
  assertJsonError(t, short.responses[0], 408, 'ERR_REQUEST_TIMEOUT');
  t.ok(short.closed, 'a body shorter than its Content-Length');
  const unfinished = await sendRaw(quick.port, [`${head}Transfer-Encoding: chunked\r\n\r\n5\r\n{"mod\r\n`]);
  assertJsonError(t, unfinished.responses[0], 408, 'ERR_REQUEST_TIMEOUT');
  t.ok(unfinished.closed, 'a chunked body with no last chunk');
});

t.test('a slow sender is held to the header timeout', async (t) => {
  // One byte every 200 ms: the headers would take 9 s; the limit is 1 s. The loop stops once closed.
  const bytes = [...live];
  const exchange = await sendRaw(quick.port, bytes, { gapMs: 200 });
  assertJsonError(t, exchange.responses[0], 408, 'ERR_REQUEST_TIMEOUT');
  t.ok(exchange.closed);
  t.ok(exchange.responses.length === 1, 'nothing else was answered');
});

t.test('a body over the limit gets a readable 413, not a reset', async (t) => {
  const body = Buffer.alloc(1024 * 1024, 'x');
  const answers = await Promise.all(
    Array.from({ length: 10 }, async () => {
      const res = await fetch(`${server.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
      return { status: res.status, body: (await res.json()) as { error: { code: string } } };
    }),
  );
  t.same(
    answers.map((a) => a.status),
    Array(10).fill(413),
  );
  t.same(
    answers.map((a) => a.body.error.code),
    Array(10).fill('ERR_BODY_TOO_LARGE'),
  );
});

t.test('1,000 idle connections do not stop normal traffic', async (t) => {
  const idle: Socket[] = [];
  t.teardown(() => idle.forEach((socket) => socket.destroy()));
  for (let i = 0; i < 1000; i++) {
    const socket = connect({ host: '127.0.0.1', port: server.port });
    socket.on('error', () => undefined);
    idle.push(socket);
  }
  await Promise.all(idle.map((socket) => new Promise((resolve) => socket.once('connect', resolve))));
  const answers = await Promise.all(Array.from({ length: 8 }, () => sendRaw(server.port, [chat('split')], { responses: 1 })));
  t.same(
    answers.map((a) => contentOf(a.responses[0])),
    Array(8).fill(reference),
  );
  t.equal(idle.filter((socket) => socket.destroyed).length, 0, 'the idle connections are still open (600 s header timeout)');
});
