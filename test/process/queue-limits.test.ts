// The engine's bounded queue against the real server (issue 13, findings 1 and 2): one agent's
// waiting turns count against --max-queued and its own --max-queued-per-agent share (429 +
// Retry-After beyond, in each API family's shape); a request that fits the context waits for the KV
// cells a running request holds and then runs, with the solo run's greedy output; only a full queue
// (429) or a request that can never fit (400) is answered at once. Waiting requests can be
// cancelled by their client, and a drain answers them 503.
import t, { type Test } from 'tap';
import { greedyReference } from '../helpers/greedy.js';
import { tinyModelPath } from '../helpers/model.js';
import { readSseData } from '../helpers/sse.js';
import { startServer, type RunningServer } from '../helpers/server.js';

const modelPath = await tinyModelPath();
const CONTEXT = 1024;
/** About 460 prompt tokens: with 256 output tokens, one such request fills 70% of the context. */
const LONG = 'word '.repeat(440);

async function serve(extra: string[]): Promise<RunningServer> {
  const server = await startServer(['serve', '--port', '0', '--model', modelPath, '--model-id', 'tiny', '--threads', '1', '--context-size', String(CONTEXT), ...extra]);
  t.teardown(() => server.stop());
  return server;
}

const chat = (server: RunningServer, agent: string, content: string, maxTokens: number, options: { stream?: boolean; signal?: AbortSignal } = {}) =>
  fetch(`${server.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-agent-id': agent },
    body: JSON.stringify({ model: 'tiny', messages: [{ role: 'user', content }], max_tokens: maxTokens, temperature: 0, stream: options.stream ?? false }),
    ...(options.signal === undefined ? {} : { signal: options.signal }),
  });

const message = (server: RunningServer, agent: string, content: string, maxTokens: number) =>
  fetch(`${server.url}/v1/messages`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-agent-id': agent },
    body: JSON.stringify({ model: 'tiny', messages: [{ role: 'user', content }], max_tokens: maxTokens, temperature: 0 }),
  });

async function queued(server: RunningServer): Promise<number> {
  const stats = (await (await fetch(`${server.url}/debug/engine`)).json()) as { queuedRequests: number };
  return stats.queuedRequests;
}

/** Polls the engine until `count` requests wait (bounded: 20 s). */
async function untilQueued(server: RunningServer, count: number): Promise<void> {
  for (let i = 0; i < 400; i++) {
    if ((await queued(server)) === count) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`the queue never held ${count} requests (it holds ${await queued(server)})`);
}

/** The max tokens with which a LONG request holds all the context's cells but the last block: nothing else fits beside it. */
async function fillingMaxTokens(server: RunningServer): Promise<number> {
  const response = await fetch(`${server.url}/v1/messages/count_tokens`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'tiny', messages: [{ role: 'user', content: LONG }] }),
  });
  return CONTEXT - ((await response.json()) as { input_tokens: number }).input_tokens - 8;
}

/** A long streaming request that fills the context, resolved once it produced its first token. */
async function runner(server: RunningServer, agent: string): Promise<{ events: Promise<string[]>; finished(): boolean }> {
  let started!: () => void;
  const streaming = new Promise<void>((resolve) => (started = resolve));
  let ended = false;
  const events = readSseData(await chat(server, agent, LONG, await fillingMaxTokens(server), { stream: true }), (data) => {
    if (data.includes('"content":"')) started();
  }).finally(() => (ended = true));
  await streaming;
  return { events, finished: () => ended };
}

async function expect429(t: Test, response: Response, code: string, family: 'openai' | 'anthropic' = 'openai'): Promise<void> {
  t.equal(response.status, 429);
  t.equal(response.headers.get('retry-after'), '1');
  const body = (await response.json()) as { type?: string; error: { type: string; code?: string } };
  t.equal(body.error.type, 'rate_limit_error');
  if (family === 'openai') t.equal(body.error.code, code);
  else t.equal(body.type, 'error', 'the Anthropic error shape');
}

t.test('max-queued 4', async (t) => {
  const server = await serve(['--max-queued', '4']);

  t.test('16 concurrent turns of one agent: 1 runs, 4 wait, 11 are answered 429 at once', async (t) => {
    const order: number[] = [];
    const responses = await Promise.all(
      Array.from({ length: 16 }, async () => {
        const response = await chat(server, 'one-agent', LONG, 256);
        order.push(response.status);
        return response;
      }),
    );
    t.same([responses.filter((r) => r.status === 200).length, responses.filter((r) => r.status === 429).length], [5, 11]);
    t.same(order, [...Array(11).fill(429), ...Array(5).fill(200)], 'every 429 came before the first answer: refused at once');
    for (const response of responses.filter((r) => r.status === 429)) await expect429(t, response, 'ERR_QUEUE_FULL');
    const texts = await Promise.all(
      responses.filter((r) => r.status === 200).map(async (r) => ((await r.json()) as { choices: { message: { content: string } }[] }).choices[0]?.message.content),
    );
    t.equal(new Set(texts).size, 1, 'the same prompt gives the same greedy output, turn after turn');
    t.equal(await queued(server), 0);
  });

  t.test('requests that fit wait for the cells a running request holds; one more finds the queue full', async (t) => {
    const running = await runner(server, 'runner');
    const waiting = ['w0', 'w1', 'w2', 'w3'].map((agent) => chat(server, agent, `Hello from ${agent}.`, 16));
    await untilQueued(server, 4);
    await expect429(t, await chat(server, 'w4', 'Hello from w4.', 16), 'ERR_QUEUE_FULL');
    t.notOk(running.finished(), 'refused while the runner still ran');
    const answers = await Promise.all(waiting);
    t.same(
      answers.map((r) => r.status),
      [200, 200, 200, 200],
      'every waiting request ran once the runner ended',
    );
    t.equal((await running.events).at(-1), '[DONE]');
  });
});

t.test('max-queued 8, max-queued-per-agent 2', async (t) => {
  const server = await serve(['--max-queued', '8', '--max-queued-per-agent', '2']);
  const short = [{ role: 'user' as const, content: 'Which river flows through Vienna?' }];
  const solo = await greedyReference(modelPath, short, 24);

  t.test("an agent's share, in both API families; a request that waits for cells runs with the solo run's output", async (t) => {
    const running = await runner(server, 'busy');
    const turns = [chat(server, 'busy', LONG, 64), chat(server, 'busy', LONG, 64)];
    await untilQueued(server, 2);
    await expect429(t, await chat(server, 'busy', LONG, 64), 'ERR_AGENT_QUEUE_FULL');
    await expect429(t, await message(server, 'busy', 'Hello.', 16), 'ERR_AGENT_QUEUE_FULL', 'anthropic');
    const tooBig = await chat(server, 'busy', LONG, 1000);
    t.equal(tooBig.status, 400, "a request that can never fit is answered at once, not after its agent's turns");
    t.equal(((await tooBig.json()) as { error: { code: string } }).error.code, 'ERR_CONTEXT_EXCEEDED');
    const other = chat(server, 'other', short[0]!.content, 24);
    await untilQueued(server, 3);
    t.notOk(running.finished(), 'all answered while the runner still ran');
    const answer = await other;
    t.equal(answer.status, 200, "another agent's request waited for cells, then ran");
    t.equal(((await answer.json()) as { choices: { message: { content: string } }[] }).choices[0]?.message.content, solo.text, 'token for token the solo run');
    t.same(
      (await Promise.all(turns)).map((r) => r.status),
      [200, 200],
    );
    t.equal((await running.events).at(-1), '[DONE]');
  });

  t.test('a waiting request whose client goes away leaves the queue', async (t) => {
    const running = await runner(server, 'runner-2');
    const forCells = new AbortController();
    const forTurn = new AbortController();
    const gone = [chat(server, 'quitter', 'Hello.', 16, { signal: forCells.signal }), chat(server, 'runner-2', 'Hello.', 16, { signal: forTurn.signal })];
    await untilQueued(server, 2);
    forCells.abort();
    forTurn.abort();
    await Promise.allSettled(gone);
    await untilQueued(server, 0);
    t.notOk(running.finished(), 'both left while the runner still ran');
    t.equal((await chat(server, 'runner-2', 'Hello.', 4)).status, 200, "the agent's next turn runs");
    t.equal((await running.events).at(-1), '[DONE]');
  });

  t.test('a drain answers waiting requests 503 at once and lets the running one finish', async (t) => {
    const running = await runner(server, 'last');
    const waiting = [chat(server, 'last', 'Hello.', 16), chat(server, 'another', 'Hello.', 16)];
    await untilQueued(server, 2);
    const exited = server.stop('SIGTERM');
    const answers = await Promise.all(waiting);
    t.same(
      answers.map((r) => r.status),
      [503, 503],
    );
    t.same(await Promise.all(answers.map(async (r) => ((await r.json()) as { error: { code: string } }).error.code)), ['ERR_DRAINING', 'ERR_DRAINING']);
    t.notOk(running.finished(), 'answered before the running request ended');
    t.equal((await running.events).at(-1), '[DONE]');
    t.equal(await exited, 0);
  });
});
