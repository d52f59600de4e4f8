// Admission under load and chunked prefill, against the real server: a small context and queue make
// concurrent long requests get 429 + Retry-After (never a 500), and the server serves again after;
// a long prompt is prefilled in chunks while another agent keeps streaming.
import t from 'tap';
import { tinyModelPath } from '../helpers/model.js';
import { readSseData } from '../helpers/sse.js';
import { startServer, type RunningServer } from '../helpers/server.js';

const modelPath = await tinyModelPath();

async function serve(extra: string[]): Promise<RunningServer> {
  const server = await startServer(['serve', '--port', '0', '--model', modelPath, '--model-id', 'tiny', '--threads', '1', ...extra]);
  t.teardown(() => server.stop());
  return server;
}

const post = (server: RunningServer, agent: string, content: string, maxTokens: number, stream = false) =>
  fetch(`${server.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-agent-id': agent },
    body: JSON.stringify({ model: 'tiny', messages: [{ role: 'user', content }], max_tokens: maxTokens, temperature: 0, stream }),
  });

t.test('exhaustion: concurrent long requests get 429 with Retry-After, none 500, and service resumes', async (t) => {
  const server = await serve(['--context-size', '512', '--max-sequences', '2', '--max-queued', '1', '--ram-cache-bytes', '0']);
  const responses = await Promise.all(Array.from({ length: 8 }, (_, i) => post(server, `load-${i}`, `Request number ${i}, please answer at length.`, 200)));
  const statuses = responses.map((r) => r.status);
  const refused = responses.filter((r) => r.status === 429);
  t.ok(refused.length >= 1, `some requests were refused (statuses ${statuses.join(',')})`);
  t.ok(statuses.every((s) => s === 200 || s === 429), 'only 200 or 429');
  for (const response of refused) {
    t.equal(response.headers.get('retry-after'), '1');
    const body = (await response.json()) as { error: { type: string; code: string } };
    t.equal(body.error.type, 'rate_limit_error');
    t.equal(body.error.code, 'ERR_QUEUE_FULL');
  }
  for (const response of responses.filter((r) => r.status === 200)) {
    t.equal(((await response.json()) as { usage: { completion_tokens: number } }).usage.completion_tokens, 200);
  }
  const after = await post(server, 'later', 'Are you still there?', 8);
  t.equal(after.status, 200, 'serves again once the load is gone');
});

t.test('a long prompt is prefilled in chunks while another agent keeps streaming', async (t) => {
  const batchTokens = 128;
  const server = await serve(['--context-size', '4096', '--max-sequences', '4', '--batch-tokens', String(batchTokens)]);
  let streamed = 0;
  let atLongStart = -1;
  let atLongFirstToken = -1;
  let startLong!: () => void;
  const streaming = new Promise<void>((resolve) => (startLong = resolve));
  const short = readSseData(await post(server, 'talker', 'Talk to me for a while.', 400, true), (data) => {
    if (data.includes('"content":"') && !data.includes('"content":""')) streamed++;
    if (streamed === 3) startLong();
  });
  await streaming;
  const longPrompt = 'alpha beta gamma delta '.repeat(500);
  const long = readSseData(await post(server, 'reader', longPrompt, 4, true), (data) => {
    if (atLongStart < 0) atLongStart = streamed;
    else if (atLongFirstToken < 0 && data.includes('"content":"') && !data.includes('"content":""')) atLongFirstToken = streamed;
  });
  const [, longEvents] = await Promise.all([short, long]);
  t.equal(longEvents.at(-1), '[DONE]');
  const usage = (await (await post(server, 'reader', longPrompt, 1)).json()) as { usage: { prompt_tokens: number } };
  const chunks = Math.ceil(usage.usage.prompt_tokens / batchTokens);
  t.ok(usage.usage.prompt_tokens >= 2000, `a ${usage.usage.prompt_tokens}-token prompt`);
  t.ok(
    atLongFirstToken - atLongStart >= chunks - 2,
    `the other stream got ${atLongFirstToken - atLongStart} tokens while the long prompt prefilled in ${chunks} chunks`,
  );
});
