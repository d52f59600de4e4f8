// Admission under load and chunked prefill, against the real server: concurrent long requests on a
// small context wait for cells and all complete; a full queue gets 429 + Retry-After (never a 500);
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

t.test('more than the KV memory holds at once: requests wait for cells, none is refused, all complete', async (t) => {
  // 512 cells = 32 blocks of 16; each request needs ~20 prompt + 200 output tokens = 14 blocks, so two run at once.
  const server = await serve(['--context-size', '512', '--max-sequences', '4', '--ram-cache-bytes', '0']);
  const responses = await Promise.all(Array.from({ length: 8 }, (_, i) => post(server, `load-${i}`, `Request number ${i}, please answer at length.`, 200)));
  t.same(
    responses.map((r) => r.status),
    Array(8).fill(200),
    'every request fits the context: each waited its turn for cells',
  );
  for (const response of responses) {
    t.equal(((await response.json()) as { usage: { completion_tokens: number } }).usage.completion_tokens, 200);
  }
  const stats = (await (await fetch(`${server.url}/debug/engine`)).json()) as Record<string, number>;
  t.equal(stats.totalBlocks, 32);
  t.equal(stats.activeSequences, 0);
  t.equal(stats.queuedRequests, 0);
});

t.test('a full wait queue: 429 ERR_QUEUE_FULL at once; the queued request runs after the running one', async (t) => {
  const server = await serve(['--max-sequences', '1', '--max-queued', '1']);
  let started!: () => void;
  const streaming = new Promise<void>((resolve) => (started = resolve));
  const running = readSseData(await post(server, 'runner', 'Talk to me for a while.', 300, true), (data) => {
    if (data.includes('"content":"')) started();
  });
  await streaming;
  // Which of the two arrives first is up to the network stack: one waits in the queue, the other finds it full.
  const answers = await Promise.all([post(server, 'second', 'Hello there.', 8), post(server, 'third', 'Hello again.', 8)]);
  const [queued, overflow] = [...answers].sort((a, b) => a.status - b.status) as [Response, Response];
  t.equal(overflow.status, 429);
  t.equal(overflow.headers.get('retry-after'), '1');
  t.equal(((await overflow.json()) as { error: { code: string } }).error.code, 'ERR_QUEUE_FULL');
  t.equal(queued.status, 200);
  t.equal(((await queued.json()) as { usage: { completion_tokens: number } }).usage.completion_tokens, 8);
  t.equal((await running).at(-1), '[DONE]');
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
  t.ok(atLongFirstToken - atLongStart >= chunks - 2, `the other stream got ${atLongFirstToken - atLongStart} tokens while the long prompt prefilled in ${chunks} chunks`);
});

t.test("idle agents' blocks make way for a newcomer: spilled to RAM, then restored exactly", async (t) => {
  // 32 blocks; a finished turn of ~20 prompt + 100 output tokens keeps ~8 blocks, a running one reserves 8.
  const server = await serve(['--context-size', '512', '--max-sequences', '8', '--max-queued', '8']);
  const ask = async (agent: string, maxTokens: number) => {
    const response = await post(server, agent, `I am agent ${agent}. Tell me a long story.`, maxTokens);
    const body = (await response.json()) as { choices: { message: { content: string } }[]; usage: { prompt_tokens_details: { cached_tokens: number } } };
    return {
      status: response.status,
      tier: response.headers.get('x-semantic-cache'),
      text: body.choices[0]?.message.content,
      cached: body.usage.prompt_tokens_details.cached_tokens,
    };
  };
  const first = await ask('a', 100);
  await ask('b', 100);
  await ask('c', 100);
  const big = await ask('d', 300);
  t.equal(big.status, 200, 'fits once idle agents are spilled');
  const stats = (await (await fetch(`${server.url}/debug/engine`)).json()) as { ramAgents: number; usedBlocks: number; totalBlocks: number };
  t.ok(stats.ramAgents >= 1, `${stats.ramAgents} idle agents were spilled to RAM`);
  t.ok(stats.usedBlocks <= stats.totalBlocks);
  const again = await ask('a', 100);
  t.equal(again.tier, 'ram', 'the least recently used agent went to RAM first and comes back from there');
  t.ok(again.cached > 0);
  t.equal(again.text, first.text, 'the same prompt gives the same greedy output after the restore');
});

t.test('a split KV cache caps each request at its stream; more than that is 400 with both numbers', async (t) => {
  // llama.cpp pads each stream to 256 cells: 2 sequences of 256.
  const server = await serve(['--context-size', '512', '--max-sequences', '2', '--kv-unified', 'false']);
  const tooBig = await post(server, 'big', 'Hello.', 300);
  t.equal(tooBig.status, 400);
  const body = (await tooBig.json()) as { error: { message: string; code: string } };
  t.equal(body.error.code, 'ERR_CONTEXT_EXCEEDED');
  t.match(body.error.message, /needs \d+ tokens .* holds 256\./);
  const [a, b] = await Promise.all([post(server, 'a', 'Hello from a.', 100), post(server, 'b', 'Hello from b.', 100)]);
  t.same([a.status, b.status], [200, 200], 'two requests decode side by side, one per stream');
  t.equal(((await a.json()) as { usage: { completion_tokens: number } }).usage.completion_tokens, 100);
});
