// The Agents API against a real server: agents spilled down the tiers are listed at the tier they are
// in with the exact tokens their caches hold; stats are the sums of the list; DELETE evicts (the
// file is kept and the next turn comes from disk) or forgets (the file is gone, the next turn a miss).
import t from 'tap';
import { existsSync, mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cachedAfter, greedyReference } from '../helpers/greedy.js';
import { tinyModelPath } from '../helpers/model.js';
import { persisted, serveOneSequence, type RunningServer } from '../helpers/server.js';
import { cacheFileName } from '../../shared/cache-files.js';
import type { ChatMessage } from '../../shared/protocol/messages.js';

const modelPath = await tinyModelPath();
const MAX = 8;

const serve = (cacheDir: string, ramCacheBytes: number): Promise<RunningServer> => serveOneSequence(t, modelPath, { contextSize: 2048, ramCacheBytes, cacheDir });

const talk = (agent: string): ChatMessage[] => [{ role: 'user', content: `Hello from ${agent}.` }];

async function turn(server: RunningServer, agent: string): Promise<string | null> {
  const response = await fetch(`${server.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-agent-id': agent },
    body: JSON.stringify({ model: 'tiny', messages: talk(agent), max_tokens: MAX, temperature: 0 }),
  });
  await response.json();
  return response.headers.get('x-semantic-cache');
}

interface ApiAgent {
  id: string;
  tier: string;
  tokens: number | null;
  bytes: number;
  last_used: number;
}
type Totals = Record<'active' | 'hot' | 'ram' | 'disk', { agents: number; tokens: number; bytes: number }>;

async function call(server: RunningServer, method: string, path: string): Promise<{ status: number; body: unknown }> {
  const response = await fetch(`${server.url}${path}`, { method });
  return { status: response.status, body: await response.json() };
}

async function list(server: RunningServer): Promise<ApiAgent[]> {
  const { status, body } = await call(server, 'GET', '/v1/agents');
  if (status !== 200 || (body as { object?: unknown }).object !== 'list') throw new Error(`GET /v1/agents: ${status} ${JSON.stringify(body)}`);
  return [...(body as { data: ApiAgent[] }).data].sort((a, b) => a.id.localeCompare(b.id));
}

function sums(agents: ApiAgent[]): Totals {
  const totals: Totals = {
    active: { agents: 0, tokens: 0, bytes: 0 },
    hot: { agents: 0, tokens: 0, bytes: 0 },
    ram: { agents: 0, tokens: 0, bytes: 0 },
    disk: { agents: 0, tokens: 0, bytes: 0 },
  };
  for (const agent of agents) {
    const sum = totals[agent.tier as keyof Totals];
    sum.agents++;
    sum.tokens += agent.tokens ?? 0;
    sum.bytes += agent.bytes;
  }
  return totals;
}

t.test('one sequence: the older agent spills to RAM; list, inspect, stats, 404, 400', async (t) => {
  const server = await serve(mkdtempSync(join(tmpdir(), 'semantic-agents-')), 64 * 1024 * 1024);
  const before = Math.floor(Date.now() / 1000);
  const [coldA, coldB] = [await greedyReference(modelPath, talk('a'), MAX), await greedyReference(modelPath, talk('b'), MAX)];
  t.equal(await turn(server, 'a'), 'miss');
  t.equal(await turn(server, 'b'), 'miss');
  const agents = await list(server);
  t.match(agents, [
    { id: 'a', tier: 'ram', tokens: cachedAfter(coldA).length },
    { id: 'b', tier: 'hot', tokens: cachedAfter(coldB).length },
  ]);
  t.equal(agents.length, 2);
  for (const agent of agents) {
    t.ok(agent.bytes > 0, `${agent.id} has bytes`);
    t.ok(agent.last_used >= before && agent.last_used <= Date.now() / 1000 + 1, `${agent.id} last_used is Unix seconds`);
  }

  const one = await call(server, 'GET', '/v1/agents/a');
  t.equal(one.status, 200);
  t.same(one.body, agents[0]);

  const missing = await call(server, 'GET', '/v1/agents/nobody');
  t.equal(missing.status, 404);
  t.match(missing.body, { error: { code: 'ERR_NOT_FOUND', type: 'invalid_request_error' } });
  t.equal((await call(server, 'DELETE', '/v1/agents/nobody')).status, 404);
  const invalid = await call(server, 'GET', '/v1/agents/.hidden');
  t.equal(invalid.status, 400);
  t.match(invalid.body, { error: { code: 'ERR_BAD_REQUEST', param: 'id' } });

  const stats = await call(server, 'GET', '/v1/agents/stats');
  t.equal(stats.status, 200);
  t.match(stats.body, { ...sums(agents), budgets: { ram_bytes: 64 * 1024 * 1024 } });
  t.equal((stats.body as Totals).hot.agents, 1);
  const engine = (await (await fetch(`${server.url}/debug/engine`)).json()) as { ramBytes: number };
  t.equal((stats.body as Totals).ram.bytes, engine.ramBytes, 'the Agents API and /debug/engine count the same RAM bytes (logits rows included)');
});

t.test('no RAM tier: evict_only keeps the file and the next turn comes from disk; delete removes it', async (t) => {
  const cacheDir = mkdtempSync(join(tmpdir(), 'semantic-agents-'));
  const server = await serve(cacheDir, 0);
  const coldA = await greedyReference(modelPath, talk('a'), MAX);
  await turn(server, 'a');
  await turn(server, 'b');
  await persisted(server, 'a');
  t.match(await list(server), [
    { id: 'a', tier: 'disk', tokens: cachedAfter(coldA).length },
    { id: 'b', tier: 'hot' },
  ]);
  const file = join(cacheDir, cacheFileName('b'));

  // b is hot, its turn maybe not written yet: evict_only writes it first.
  const evicted = await call(server, 'DELETE', '/v1/agents/b?evict_only=true');
  t.equal(evicted.status, 200);
  t.same(evicted.body, { id: 'b', deleted: true, evict_only: true, tiers: ['hot'] });
  t.ok(existsSync(file), 'the file is kept (written if it was not yet)');
  t.match(await list(server), [
    { id: 'a', tier: 'disk' },
    { id: 'b', tier: 'disk' },
  ]);
  t.equal(await turn(server, 'b'), 'disk', "b's next turn is restored from its file");

  // b is hot again (its file is kept alongside): delete forgets both.
  await persisted(server, 'b', 2);
  const deleted = await call(server, 'DELETE', '/v1/agents/b');
  t.equal(deleted.status, 200);
  t.same(deleted.body, { id: 'b', deleted: true, evict_only: false, tiers: ['hot', 'disk'] });
  t.notOk(existsSync(file), 'the file is deleted');
  t.notOk(
    readdirSync(cacheDir).some((name) => name.includes(cacheFileName('b'))),
    'no trace of it left',
  );
  t.equal((await call(server, 'GET', '/v1/agents/b')).status, 404);
  t.equal(await turn(server, 'b'), 'miss', "b's next turn starts cold");
});

t.test('after a restart, files found at startup are listed with their exact token counts', async (t) => {
  const cacheDir = mkdtempSync(join(tmpdir(), 'semantic-agents-'));
  const first = await serve(cacheDir, 0);
  const coldA = await greedyReference(modelPath, talk('a'), MAX);
  await turn(first, 'a');
  await persisted(first, 'a');
  t.equal(await first.stop('SIGTERM'), 0);

  const second = await serve(cacheDir, 0);
  // The headers are read in the background after startup: a bounded wait for the count to appear.
  let listed = await list(second);
  for (let i = 0; i < 200 && listed[0]?.tokens === null; i++) listed = await list(second);
  t.match(listed, [{ id: 'a', tier: 'disk', tokens: cachedAfter(coldA).length }]);
  t.match((await call(second, 'GET', '/v1/agents/stats')).body, { disk: { agents: 1, tokens: cachedAfter(coldA).length } });
});
