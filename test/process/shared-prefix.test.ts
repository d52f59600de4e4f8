// Prefix sharing across agents, end to end: agent B sends the system prompt agent A sent, plus its own
// message. B computes only its prompt minus the longest common prefix (exact tokens: the index finds
// candidates by 16-token blocks, the reuse itself is the exact common prefix), whether A's cache is hot
// (cells shared in the context), in RAM, on disk, or on disk after a restart; B's greedy output equals
// a cold run's token for token. Sharing is scoped: another API key's agents, or anyone with sharing
// off, compute everything.
import t, { type Test } from 'tap';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cachedAfter, expectedReuse, greedyReference, type GreedyReference } from '../helpers/greedy.js';
import { tinyModelPath } from '../helpers/model.js';
import { persisted, startServer, type RunningServer } from '../helpers/server.js';
import type { ChatMessage } from '../../shared/protocol/messages.js';

const modelPath = await tinyModelPath();
const MAX = 8;
const SYSTEM = Array.from({ length: 40 }, (_, i) => `Rule ${i}: answer the swarm's task ${i % 7} briefly.`).join(' ');
const talk = (question: string): ChatMessage[] => [
  { role: 'system', content: SYSTEM },
  { role: 'user', content: question },
];
const forA = talk('Summarise the plan for the first worker.');
const forB = talk('Which files does the second worker need?');
const forC = talk('Name the tests the third worker runs.');

async function serve(extra: string[], cacheDir = mkdtempSync(join(tmpdir(), 'semantic-agents-'))): Promise<RunningServer> {
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
    '--context-size',
    '4096',
    '--cache-dir',
    cacheDir,
    ...extra,
  ]);
  t.teardown(() => server.stop());
  return server;
}

interface Turn {
  text: string;
  tier: string | null;
  from: string | null;
  computed: number;
  cached: number;
}

async function turn(server: RunningServer, agent: string, messages: ChatMessage[], key?: string): Promise<Turn> {
  const response = await fetch(`${server.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-agent-id': agent, ...(key === undefined ? {} : { authorization: `Bearer ${key}` }) },
    body: JSON.stringify({ model: 'tiny', messages, max_tokens: MAX, temperature: 0 }),
  });
  const body = (await response.json()) as { choices: { message: { content: string } }[]; usage: { prompt_tokens_details: { cached_tokens: number } } };
  if (response.status !== 200) throw new Error(`${response.status}: ${JSON.stringify(body)}`);
  return {
    text: body.choices[0]?.message.content ?? '',
    tier: response.headers.get('x-semantic-cache'),
    from: response.headers.get('x-semantic-shared-from'),
    computed: Number(response.headers.get('x-semantic-prompt-tokens-computed')),
    cached: body.usage.prompt_tokens_details.cached_tokens,
  };
}

const coldA = await greedyReference(modelPath, forA, MAX);
const coldB = await greedyReference(modelPath, forB, MAX);
const shared = expectedReuse(cachedAfter(coldA), coldB);
const coldC = await greedyReference(modelPath, forC, MAX);

/** B after A: the common prefix came from A's cache in `from`, the rest was computed, the output is the cold one. */
function expectShared(t: Test, b: Turn, from: string, cold: GreedyReference = coldB): void {
  t.equal(b.tier, 'shared');
  t.equal(b.from, from, `the prefix came from A's ${from} cache`);
  t.equal(b.cached, shared, 'cached_tokens = the common prefix');
  t.equal(b.computed, cold.promptTokens - shared, "only B's own suffix was computed");
  t.equal(b.text, cold.text, 'greedy output equals a cold run token for token');
}

t.test("the common prefix is long and ends before B's own message", async (t) => {
  t.ok(shared > 300 && shared < coldB.promptTokens - 5, `${shared} of ${coldB.promptTokens} tokens shared`);
});

t.test("A hot: B shares A's cells in the context", async (t) => {
  const server = await serve(['--max-sequences', '4']);
  const a = await turn(server, 'a', forA);
  t.equal(a.tier, 'miss');
  t.equal(a.text, coldA.text);
  expectShared(t, await turn(server, 'b', forB), 'hot');
  // A's own next turn still reuses its own cache, untouched by B's.
  const again = await turn(server, 'a', forA);
  t.equal(again.tier, 'hot');
  t.equal(again.text, coldA.text);
});

t.test("a context too small for the prefix twice: B and C join A's cells, nothing is spilled", async (t) => {
  // The pool counts shared cells once: unshared, B would need A spilled to RAM first.
  const cells = 1024;
  const need = (prompt: number): number => Math.ceil((prompt + MAX) / 16);
  t.ok(need(coldA.promptTokens) + need(coldB.promptTokens) > cells / 16, 'A and B do not fit side by side unshared');
  const server = await serve(['--max-sequences', '4', '--context-size', String(cells)]);
  t.equal((await turn(server, 'a', forA)).text, coldA.text);
  expectShared(t, await turn(server, 'b', forB), 'hot');
  const c = await turn(server, 'c', forC);
  const sharedC = Math.max(expectedReuse(cachedAfter(coldA), coldC), expectedReuse(cachedAfter(coldB), coldC));
  t.same([c.tier, c.from, c.cached, c.computed], ['shared', 'hot', sharedC, coldC.promptTokens - sharedC], 'C joins the hot cells too');
  t.equal(c.text, coldC.text);
  const engine = (await (await fetch(`${server.url}/debug/engine`)).json()) as { ramAgents: number; idleSequences: number };
  t.equal(engine.ramAgents, 0, 'no agent was spilled to RAM');
  t.equal(engine.idleSequences, 3, 'A, B and C are all hot');
  const again = await turn(server, 'a', forA);
  t.equal(again.tier, 'hot', 'A returns to its own cells');
  t.equal(again.text, coldA.text);
});

t.test("A in RAM: B imports the prefix of A's exported state", async (t) => {
  const server = await serve(['--max-sequences', '1']);
  await turn(server, 'a', forA);
  expectShared(t, await turn(server, 'b', forB), 'ram');
});

t.test("A on disk: B imports the prefix of A's cache file", async (t) => {
  const server = await serve(['--max-sequences', '1', '--ram-cache-bytes', '0']);
  await turn(server, 'a', forA);
  expectShared(t, await turn(server, 'b', forB), 'disk');
});

t.test("after a restart: B finds A's prefix in the file the first process wrote", async (t) => {
  const cacheDir = mkdtempSync(join(tmpdir(), 'semantic-agents-'));
  const first = await serve(['--max-sequences', '1', '--ram-cache-bytes', '0'], cacheDir);
  await turn(first, 'a', forA);
  await persisted(first, 'a');
  t.equal(await first.stop('SIGTERM'), 0);
  const second = await serve(['--max-sequences', '1', '--ram-cache-bytes', '0'], cacheDir);
  // Files found at startup are indexed as their headers are read, in the background: a bounded wait.
  const known = async (): Promise<boolean> => {
    const body = (await (await fetch(`${second.url}/v1/agents/a`)).json()) as { tokens?: number | null };
    return typeof body.tokens === 'number';
  };
  for (let i = 0; i < 200 && !(await known()); i++);
  expectShared(t, await turn(second, 'b', forB), 'disk');
});

t.test("per-key scope: key 2 never reuses key 1's prefix; the same key does", async (t) => {
  const server = await serve(['--max-sequences', '4', '--api-keys', 'key-one-0001,key-two-0002']);
  await turn(server, 'a', forA, 'key-one-0001');
  const other = await turn(server, 'b', forB, 'key-two-0002');
  t.equal(other.tier, 'miss');
  t.equal(other.computed, coldB.promptTokens, 'key 2 computed its whole prompt');
  t.equal(other.text, coldB.text);
  // Key 2's request started while A was idle, so A's own cells left the context (--idle-agents auto).
  expectShared(t, await turn(server, 'c', forB, 'key-one-0001'), 'ram');
});

t.test("sharing off: nobody reuses another agent's prefix, own caches still work", async (t) => {
  const server = await serve(['--max-sequences', '4', '--prefix-sharing', 'off']);
  await turn(server, 'a', forA);
  const b = await turn(server, 'b', forB);
  t.equal(b.tier, 'miss');
  t.equal(b.computed, coldB.promptTokens);
  t.equal(b.text, coldB.text);
  t.equal((await turn(server, 'a', forA)).tier, 'ram', "A's cells left the context when B started; its own cache still serves it");
});

t.test('--idle-agents keep: an idle agent stays hot while another agent runs', async (t) => {
  const server = await serve(['--max-sequences', '4', '--prefix-sharing', 'off', '--idle-agents', 'keep']);
  await turn(server, 'a', forA);
  t.equal((await turn(server, 'b', forB)).tier, 'miss');
  t.equal((await turn(server, 'a', forA)).tier, 'hot');
});
