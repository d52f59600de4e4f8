// The Agents API without a model: listing at the fastest tier, totals as sums of the list, 404 and
// 409, evict (hot and RAM left, the unwritten turn written first) and forget (every tier left), the
// boundary queue, and the HTTP layer's parameters and wire form.
import t from 'tap';
import { agentTotals, DeferredOps, listAgents, runAgentsOp, type AgentSources } from '../../worker/engine/kv/agents.js';
import { AgentTiers } from '../../worker/engine/kv/tiers.js';
import { BlockPool } from '../../worker/engine/kv/block-pool.js';
import type { Context } from '../../worker/engine/addon.js';
import type { DiskTier } from '../../worker/persistence/disk-tier.js';
import { agentIdParam, evictOnlyParam, toApiAgent, toApiTotals } from '../../worker/api/ops/agents.js';
import type { AgentsRequestMessage } from '../../shared/protocol/messages.js';
import { FakeDisk } from '../helpers/fake-disk.js';

const noLogits = new Float32Array(0);
const tokens = (n: number): Int32Array => Int32Array.from({ length: n }, (_, i) => i);

function setup(ramBudget = 10_000): { tiers: AgentTiers; disk: FakeDisk; removed: number[]; released: number[]; sources: (busy?: string[]) => AgentSources } {
  const removed: number[] = [];
  const released: number[] = [];
  const context = {
    seqRemove: (seq: number) => (removed.push(seq), true),
    stateSeqGet: (seq: number) => Promise.resolve(new Uint8Array(10 * (seq + 1))),
    stateSeqSize: (seq: number) => 10 * (seq + 1),
  } as unknown as Context;
  const pool = new BlockPool(64, 16);
  const disk = new FakeDisk();
  const tiers = new AgentTiers(context, { pool, releaseSequence: (seq) => void released.push(seq) }, ramBudget, disk as unknown as DiskTier, () => undefined);
  const sources = (busy: string[] = []): AgentSources => ({ tiers, context, active: [], isBusy: (id) => busy.includes(id), now: () => 9_000 });
  return { tiers, disk, removed, released, sources };
}

const request = (op: AgentsRequestMessage['op'], agentId?: string, evictOnly?: boolean): AgentsRequestMessage => ({
  type: 'agents_request',
  requestId: '#agents-1',
  op,
  ...(agentId === undefined ? {} : { agentId }),
  ...(evictOnly === undefined ? {} : { evictOnly }),
});

t.test('each agent is listed once, at the fastest tier holding it', async (t) => {
  const { tiers, disk, sources } = setup();
  disk.files.set('cold', { agentId: 'cold', bytes: 700, lastUsed: 1_000 });
  disk.files.set('warm', { agentId: 'warm', bytes: 900, lastUsed: 1_500, tokens: 8 });
  tiers.ram.put('warm', tokens(8), new Uint8Array(50), noLogits, 2_000);
  tiers.park('idle', 2, tokens(5), noLogits, 0);
  const idleAt = tiers.hot.peek('idle')?.usedAt ?? 0;
  const active = [
    { agentId: 'busy', seqId: 0, usedCells: 12 },
    { agentId: 'idle', seqId: 1, usedCells: 3 },
  ];
  t.same(listAgents({ ...sources(), active }), [
    { id: 'busy', tier: 'active', tokens: 12, bytes: 10, lastUsed: 9_000 },
    { id: 'idle', tier: 'active', tokens: 3, bytes: 20, lastUsed: 9_000 },
    { id: 'warm', tier: 'ram', tokens: 8, bytes: 50, lastUsed: 2_000 },
    { id: 'cold', tier: 'disk', tokens: null, bytes: 700, lastUsed: 1_000 },
  ]);
  t.same(listAgents(sources())[0], { id: 'idle', tier: 'hot', tokens: 5, bytes: 30, lastUsed: idleAt });
});

t.test('totals are the sums of the list by tier, with the budgets', async (t) => {
  const totals = agentTotals(
    [
      { id: 'a', tier: 'hot', tokens: 5, bytes: 30, lastUsed: 1 },
      { id: 'b', tier: 'hot', tokens: 7, bytes: 40, lastUsed: 1 },
      { id: 'c', tier: 'disk', tokens: null, bytes: 700, lastUsed: 1 },
    ],
    { ram: 10, disk: 20 },
  );
  t.same(totals, {
    active: { agents: 0, tokens: 0, bytes: 0 },
    hot: { agents: 2, tokens: 12, bytes: 70 },
    ram: { agents: 0, tokens: 0, bytes: 0 },
    disk: { agents: 1, tokens: 0, bytes: 700 },
    ramBudgetBytes: 10,
    diskBudgetBytes: 20,
  });
});

t.test('get and delete: 404 for an agent no tier holds, 409 for a busy one', async (t) => {
  const { tiers, sources } = setup();
  tiers.park('a', 1, tokens(4), noLogits, 0);
  await t.rejects(runAgentsOp(request('get', 'nobody'), sources()), { code: 'ERR_NOT_FOUND' });
  await t.rejects(runAgentsOp(request('delete', 'nobody'), sources()), { code: 'ERR_NOT_FOUND' });
  await t.rejects(runAgentsOp(request('delete', 'a'), sources(['a'])), { code: 'ERR_CONFLICT' });
  t.match(await runAgentsOp(request('get', 'a'), sources()), { kind: 'list', agents: [{ id: 'a', tier: 'hot', tokens: 4 }] });
  t.match(await runAgentsOp(request('stats'), sources()), { kind: 'stats', totals: { hot: { agents: 1, tokens: 4 }, ramBudgetBytes: 10_000, diskBudgetBytes: 5000 } });
});

t.test('delete forgets the agent in every tier, its sequence freed', async (t) => {
  const { tiers, disk, removed, released, sources } = setup();
  tiers.park('a', 1, tokens(4), noLogits, 0);
  disk.files.set('a', { agentId: 'a', bytes: 900, lastUsed: 1 });
  t.same(await runAgentsOp(request('delete', 'a'), sources()), { kind: 'deleted', id: 'a', tiers: ['hot', 'disk'] });
  t.same([removed, released], [[1], [1]]);
  t.same(listAgents(sources()), []);
  t.same(await tiers.writeDue(Infinity), 0, 'its pending write-behind is cancelled');
  tiers.ram.put('b', tokens(3), new Uint8Array(20), noLogits);
  t.same(await runAgentsOp(request('delete', 'b'), sources()), { kind: 'deleted', id: 'b', tiers: ['ram'] });
});

t.test('evict_only writes an unwritten hot turn first, keeps the file, and leaves hot and RAM', async (t) => {
  const { tiers, disk, released, sources } = setup();
  tiers.park('a', 1, tokens(4), noLogits, 0);
  t.same(await runAgentsOp(request('delete', 'a', true), sources()), { kind: 'deleted', id: 'a', tiers: ['hot'] });
  t.same(disk.writes, ['a'], 'the pending turn was written before the cells were freed');
  t.same(released, [1]);
  t.same(listAgents(sources()), [{ id: 'a', tier: 'disk', tokens: 4, bytes: 120, lastUsed: 3_000 }]);
  t.equal(tiers.savedCacheOf('a')?.tier, 'disk', 'its next turn comes from disk');
  t.same(await tiers.writeDue(Infinity), 0, 'and is not written again');

  tiers.ram.put('b', tokens(3), new Uint8Array(20), noLogits);
  t.same(await runAgentsOp(request('delete', 'b', true), sources()), { kind: 'deleted', id: 'b', tiers: ['ram'] });
  t.same(disk.writes, ['a', 'b'], 'a RAM state with no file is written');
  tiers.ram.put('b', tokens(3), new Uint8Array(20), noLogits);
  await runAgentsOp(request('delete', 'b', true), sources());
  t.same(disk.writes, ['a', 'b'], 'one with a file is not written again');
});

t.test('deferred operations run in order only when the boundary runs them', async (t) => {
  const ops = new DeferredOps();
  const order: number[] = [];
  const first = ops.defer(() => Promise.resolve(order.push(1)));
  const failing = ops.defer(() => Promise.reject(new Error('no')));
  const last = ops.defer(() => Promise.resolve(order.push(3)));
  t.equal(ops.pending, true);
  t.same(order, []);
  await ops.runAll();
  t.equal(ops.pending, false);
  t.equal(await first, 1);
  await t.rejects(failing, { message: 'no' });
  t.equal(await last, 2);
  t.same(order, [1, 3]);
});

t.test('HTTP: ids checked like X-Agent-ID, evict_only parsed, snake_case wire form', async (t) => {
  t.equal(agentIdParam('conv-1'), 'conv-1');
  t.equal(agentIdParam('team%3Aa'), 'team:a', 'percent-decoded');
  t.throws(() => agentIdParam('.hidden'), { code: 'ERR_BAD_REQUEST', param: 'id' });
  t.throws(() => agentIdParam('%E0%A4%A'), { code: 'ERR_BAD_REQUEST', param: 'id' });
  t.equal(evictOnlyParam(''), false);
  t.equal(evictOnlyParam('evict_only=true'), true);
  t.equal(evictOnlyParam('evict_only=0'), false);
  t.throws(() => evictOnlyParam('evict_only=yes'), { code: 'ERR_BAD_REQUEST', param: 'evict_only' });
  t.same(toApiAgent({ id: 'a', tier: 'ram', tokens: 4, bytes: 9, lastUsed: 1_700_000_000_999 }), { id: 'a', tier: 'ram', tokens: 4, bytes: 9, last_used: 1_700_000_000 });
  const zero = { agents: 0, tokens: 0, bytes: 0 };
  t.same(toApiTotals({ active: zero, hot: zero, ram: zero, disk: zero, ramBudgetBytes: 1, diskBudgetBytes: 2 }), {
    object: 'agents.stats',
    active: zero,
    hot: zero,
    ram: zero,
    disk: zero,
    budgets: { ram_bytes: 1, disk_bytes: 2 },
  });
});
