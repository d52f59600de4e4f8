// SIGTERM to `semantic serve` drains: streams in flight run to their end, requests on open keep-alive
// connections get 503 + Retry-After + Connection: close, readiness says draining, every agent's cache
// is written, and the process exits 0; the next server serves those agents from disk. Past
// --drain-timeout a running request is cut, the exit code is 3, and the agent's cache is intact.
import t from 'tap';
import { Agent } from 'node:http';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cacheFileName } from '../../shared/cache-files.js';
import { tinyModelPath } from '../helpers/model.js';
import { logged, startServer, type RunningServer } from '../helpers/server.js';
import { readSseData } from '../helpers/sse.js';
import { onConnection } from '../helpers/keep-alive.js';
import { greedyReference } from '../helpers/greedy.js';
import type { ChatMessage } from '../../shared/protocol/messages.js';

const modelPath = await tinyModelPath();
const STREAMS = 16;
const MAX_TOKENS = 300;

async function serve(cacheDir: string, extra: string[] = []): Promise<RunningServer> {
  const server = await startServer([
    'serve',
    '--port',
    '0',
    '--model',
    modelPath,
    '--model-id',
    'tiny',
    '--threads',
    '1',
    '--cache-dir',
    cacheDir,
    // A generous drain deadline: on a loaded CI machine 16 streams may take long to finish; the
    // deadline itself is tested apart, with --drain-timeout 1.
    '--context-size',
    String(STREAMS * 512),
    '--max-sequences',
    String(STREAMS),
    '--drain-timeout',
    '600',
    ...extra,
  ]);
  t.teardown(() => server.stop('SIGKILL'));
  return server;
}

const body = (agent: number, maxTokens = MAX_TOKENS) =>
  JSON.stringify({
    model: 'tiny',
    messages: [{ role: 'user', content: `Agent ${agent}, tell me a long story.` }],
    max_tokens: maxTokens,
    temperature: 0,
    stream: true,
    stream_options: { include_usage: true },
  });

interface StreamResult {
  events: string[];
  completionTokens: number | undefined;
}

/** Starts a stream and resolves `started` at its first content token, `done` with everything it got. */
function stream(server: RunningServer, agent: number, maxTokens = MAX_TOKENS): { started: Promise<void>; done: Promise<StreamResult>; finished(): boolean } {
  let onStarted!: () => void;
  let finished = false;
  const started = new Promise<void>((resolve) => (onStarted = resolve));
  const done = (async () => {
    const response = await fetch(`${server.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-agent-id': `agent-${agent}` },
      body: body(agent, maxTokens),
    });
    const events = await readSseData(response, (data) => data.includes('"delta"') && onStarted());
    const usage = events.map((e) => (e === '[DONE]' ? undefined : (JSON.parse(e) as { usage?: { completion_tokens: number } }).usage)).find((u) => u !== undefined);
    finished = true;
    return { events, completionTokens: usage?.completion_tokens };
  })();
  return { started, done, finished: () => finished };
}

t.test('SIGTERM with 16 streams in flight: all finish, new requests get 503, caches are written and used', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'semantic-drain-'));
  const server = await serve(dir);
  const keepAlive = new Agent({ keepAlive: true, maxSockets: 1 });
  t.teardown(() => keepAlive.destroy());
  t.equal((await onConnection(keepAlive, server.port, 'GET', '/health/ready')).status, 200, 'ready before the drain');

  const streams = Array.from({ length: STREAMS }, (_, i) => stream(server, i));
  await Promise.all(streams.map((s) => s.started));
  t.equal(streams.filter((s) => !s.finished()).length, STREAMS, 'every stream is still running when SIGTERM arrives');
  server.child.kill('SIGTERM');
  await logged(server, (line) => line.msg === 'draining');

  const ready = await onConnection(keepAlive, server.port, 'GET', '/health/ready');
  t.equal(ready.status, 503, 'readiness says 503 while draining');
  t.match(JSON.parse(ready.body), { status: 'draining' });
  const refused = await onConnection(keepAlive, server.port, 'POST', '/v1/chat/completions', body(99, 4));
  t.equal(refused.status, 503, 'a new request on a kept-alive connection gets 503');
  t.equal(refused.headers['retry-after'], '1');
  t.equal(refused.headers.connection, 'close');
  t.match(JSON.parse(refused.body), { error: { code: 'ERR_DRAINING' } });

  const results = await Promise.all(streams.map((s) => s.done));
  for (const [i, result] of results.entries()) {
    t.equal(result.events.at(-1), '[DONE]', `stream ${i} ends with [DONE]`);
    t.equal(result.completionTokens, MAX_TOKENS, `stream ${i} got all its tokens`);
  }
  t.equal(await server.exited, 0, 'exit 0: nothing was cut');
  for (let i = 0; i < STREAMS; i++) t.ok(existsSync(join(dir, cacheFileName(`agent-${i}`))), `agent-${i}'s cache file was written`);

  const next = await serve(dir);
  const again = await fetch(`${next.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-agent-id': 'agent-3' },
    body: JSON.stringify({ model: 'tiny', messages: [{ role: 'user', content: 'Agent 3, tell me a long story.' }], max_tokens: 4, temperature: 0 }),
  });
  await again.json();
  t.equal(again.headers.get('x-semantic-cache'), 'disk', "the next server serves agent-3's turn from its file");
});

/** A long stream for agent `agent` on `messages`, resolved once it produced its first token. */
async function longStream(server: RunningServer, agent: string, messages: ChatMessage[]): Promise<{ events: Promise<string[]> }> {
  let onStarted!: () => void;
  const started = new Promise<void>((resolve) => (onStarted = resolve));
  const response = await fetch(`${server.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-agent-id': agent },
    body: JSON.stringify({ model: 'tiny', messages, max_tokens: 12_000, temperature: 0, stream: true }),
  });
  const events = readSseData(response, (data) => data.includes('"content":"') && onStarted()).catch(() => ['(connection cut)']);
  await started;
  return { events }; // wrapped: an async function would wait for a returned promise
}

async function chat(server: RunningServer, agent: string, messages: ChatMessage[], maxTokens: number) {
  const response = await fetch(`${server.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-agent-id': agent },
    body: JSON.stringify({ model: 'tiny', messages, max_tokens: maxTokens, temperature: 0 }),
  });
  const parsed = (await response.json()) as { choices: { message: { content: string } }[]; usage: { prompt_tokens_details: { cached_tokens: number } } };
  return { tier: response.headers.get('x-semantic-cache'), text: parsed.choices[0]?.message.content ?? '', cached: parsed.usage.prompt_tokens_details.cached_tokens };
}

t.test('past --drain-timeout a running request is cut: exit 3, the agent cache intact', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'semantic-drain-'));
  const server = await serve(dir, ['--drain-timeout', '1', '--context-size', '16384', '--max-sequences', '2']);
  const first: ChatMessage[] = [{ role: 'user', content: 'Remember the word harbour.' }];
  const turn1 = await chat(server, 'keeper', first, 8);
  const second: ChatMessage[] = [...first, { role: 'assistant', content: turn1.text }, { role: 'user', content: 'Now write a very long essay.' }];
  const { events } = await longStream(server, 'keeper', second);
  server.child.kill('SIGTERM');
  t.equal(await server.exited, 3, 'exit code 3: the drain was cut short');
  t.not((await events).at(-1), '[DONE]', 'the cut stream did not end as if complete');
  const line = server.logs.find((entry) => typeof entry.msg === 'string' && entry.msg.startsWith('drain cut short'));
  t.match(line, { cutShort: 'deadline', cut: 1 }, 'a log line says what was cut');

  const cold = await greedyReference(modelPath, second, 8);
  const next = await serve(dir);
  const retry = await chat(next, 'keeper', second, 8);
  t.equal(retry.tier, 'disk', "the agent's cache file is there and loads");
  t.ok(retry.cached >= turn1.cached, 'it holds at least the completed turn');
  t.equal(retry.text, cold.text, 'and the retried turn equals a cold run');
});

t.test('a second SIGTERM cuts the drain at once: exit 3', async (t) => {
  const server = await serve(mkdtempSync(join(tmpdir(), 'semantic-drain-')), ['--context-size', '16384', '--max-sequences', '2']);
  const { events } = await longStream(server, 'talker', [{ role: 'user', content: 'Talk for a long time.' }]);
  server.child.kill('SIGTERM');
  await logged(server, (line) => line.msg === 'draining');
  server.child.kill('SIGTERM');
  t.equal(await server.exited, 3);
  t.not((await events).at(-1), '[DONE]');
  t.match(
    server.logs.find((entry) => typeof entry.msg === 'string' && entry.msg.startsWith('drain cut short')),
    { cutShort: 'second signal', cut: 1 },
  );
});
