// Fault injection inside the engine, with the real server and the test switches of
// worker/test-faults.ts: a decode that fails inside a batch fails only the request whose input
// makes it fail (the others finish with their cold greedy output, and the engine serves on), and
// the cache file thread dying is replaced by piscina, so later writes land.
import t, { type Test } from 'tap';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { greedyReference, type GreedyReference } from '../helpers/greedy.js';
import { tinyModelPath } from '../helpers/model.js';
import { readSseData } from '../helpers/sse.js';
import { logged, persisted, startServer, type RunningServer } from '../helpers/server.js';
import type { ChatMessage } from '../../shared/protocol/messages.js';

const modelPath = await tinyModelPath();
const STREAM_TOKENS = 150;
const story = (topic: string): ChatMessage[] => [{ role: 'user', content: `Tell me a long story about ${topic}.` }];

async function serve(t: Test, env: NodeJS.ProcessEnv, cacheDir?: string): Promise<RunningServer> {
  const args = [
    'serve',
    '--port',
    '0',
    '--model',
    modelPath,
    '--model-id',
    'tiny',
    '--threads',
    '1',
    '--context-size',
    '4096',
    '--max-sequences',
    '4',
    ...(cacheDir === undefined ? [] : ['--cache-dir', cacheDir]),
  ];
  const server = await startServer(args, 'ready', env);
  t.teardown(() => server.stop());
  return server;
}

async function chat(server: RunningServer, agent: string, messages: ChatMessage[], maxTokens: number): Promise<{ status: number; text: string; error: string }> {
  const response = await fetch(`${server.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-agent-id': agent },
    body: JSON.stringify({ model: 'tiny', messages, max_tokens: maxTokens, temperature: 0 }),
  });
  const body = (await response.json()) as { choices?: { message: { content: string } }[]; error?: { message: string } };
  return { status: response.status, text: body.choices?.[0]?.message.content ?? '', error: body.error?.message ?? '' };
}

/** A greedy stream's text and when it ended; `onFirst` runs at its first content. */
async function stream(server: RunningServer, agent: string, messages: ChatMessage[], onFirst: () => void): Promise<{ text: string; endedAt: number }> {
  const response = await fetch(`${server.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-agent-id': agent },
    body: JSON.stringify({ model: 'tiny', messages, max_tokens: STREAM_TOKENS, temperature: 0, stream: true }),
  });
  let text = '';
  await readSseData(response, (data) => {
    if (data === '[DONE]') return;
    const piece = (JSON.parse(data) as { choices: { delta: { content?: string } }[] }).choices[0]?.delta.content ?? '';
    if (text === '' && piece !== '') onFirst();
    text += piece;
  });
  return { text, endedAt: performance.now() };
}

/** A token of the poisoned prompt that no other request of the test decodes (prompt or output). */
function poisonToken(poisoned: GreedyReference, others: GreedyReference[]): number {
  const used = new Set(others.flatMap((reference) => [...reference.prompt, ...reference.tokens]));
  const token = poisoned.prompt.find((candidate) => !used.has(candidate));
  if (token === undefined) throw new Error('the poisoned prompt has no token of its own');
  return token;
}

t.test('a decode failure inside a batch fails only that request; the others finish with their greedy output', async (t) => {
  const topics = ['owls', 'glaciers', 'violins'];
  const references = await Promise.all(topics.map((topic) => greedyReference(modelPath, story(topic), STREAM_TOKENS)));
  const after = await greedyReference(modelPath, story('orchards'), 8);
  const token = poisonToken(await greedyReference(modelPath, story('comets'), 1), [...references, after]);
  const server = await serve(t, { SEMANTIC_FAULT_DECODE_TOKEN: String(token) });

  let started = 0;
  let allStarted!: () => void;
  const streaming = new Promise<void>((resolve) => (allStarted = resolve));
  const streams = topics.map((topic, i) => stream(server, `agent-${i}`, story(topic), () => ++started === topics.length && allStarted()));
  await streaming;
  const poisoned = await chat(server, 'poisoned', story('comets'), 8);
  const failedAt = performance.now();
  const results = await Promise.all(streams);

  t.equal(poisoned.status, 500, 'the request whose decode fails gets a 500 in the API shape');
  t.match(poisoned.error, /^Internal error; it was logged with request id /);
  const internal = server.logs.filter((line) => line.msg === 'internal error (a bug)');
  t.equal(internal.length, 1, "one error logged: that request's");
  t.match((internal[0]?.err as { message?: string } | undefined)?.message, /^decoding this request failed: llama_decode: .*SEMANTIC_FAULT_DECODE_TOKEN/);
  t.ok(
    results.every((result) => result.endedAt > failedAt),
    'the other streams were still running when it failed',
  );
  t.same(
    results.map((result) => result.text),
    references.map((reference) => reference.text),
    'each other stream equals its cold greedy run, token for token',
  );
  t.same(await chat(server, 'after', story('orchards'), 8), { status: 200, text: after.text, error: '' }, 'the engine serves on');
  t.equal((await fetch(`${server.url}/health/ready`)).status, 200);
  t.notOk(
    server.logs.some((line) => line.msg === 'inference engine died'),
    'the engine never died',
  );
});

t.test('the cache file thread dying is replaced, and later writes land', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'semantic-writer-'));
  const server = await serve(t, { SEMANTIC_FAULT_WRITER_EXIT_AGENT: 'doomed' }, dir);
  const failed = (line: Record<string, unknown>): boolean => line.msg === 'agent cache write failed' && line.agentId === 'doomed';

  t.equal((await chat(server, 'doomed', story('owls'), 4)).status, 200, 'the turn is served');
  await logged(server, failed);
  t.equal(server.logs.find(failed)?.reason, 'ERR_WRITER_EXITED', 'its write failed: the thread exited');
  t.equal(((await (await fetch(`${server.url}/health/ready`)).json()) as { status: string }).status, 'degraded');

  t.equal((await chat(server, 'survivor', story('glaciers'), 4)).status, 200);
  await persisted(server, 'survivor');
  t.ok(existsSync(join(dir, 'survivor.safetensors')), "a new thread wrote the next agent's file");
  t.notOk(existsSync(join(dir, 'doomed.safetensors')), 'the doomed write left no file');
  t.equal(((await (await fetch(`${server.url}/health/ready`)).json()) as { status: string }).status, 'ready', 'and readiness is back');
  t.equal(server.child.exitCode, null, 'the server never stopped');
});
