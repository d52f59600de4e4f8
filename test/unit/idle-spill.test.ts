// When another agent's request starts, idle agents whose cells are mostly their own leave the context
// (tiers.spillIdleOwners): exact agents, sequences and RAM entries, with a real block pool and a fake
// context (its exports are sized by sequence id, as in agents.test.ts). And write-behind waits for a
// quiet engine, within a bound; a turn spilled to RAM before its write is written from RAM, when due
// or when the RAM budget pushes it out.
import t from 'tap';
import { AgentTiers, SPILL_MIN_OWN_CELLS } from '../../worker/engine/kv/tiers.js';
import { EXPORT_PIECE_CELLS, WRITE_BUSY_LIMIT_MS, WRITE_DELAY_MS } from '../../worker/engine/kv/write-behind.js';
import { BlockPool } from '../../worker/engine/kv/block-pool.js';
import type { Context } from '../../worker/engine/addon.js';
import type { DiskTier } from '../../worker/persistence/disk-tier.js';
import { FakeDisk } from '../helpers/fake-disk.js';

const noLogits = new Float32Array(0);
const tokens = (n: number, from = 0): Int32Array => Int32Array.from({ length: n }, (_, i) => from + i);

function setup(): { tiers: AgentTiers; pool: BlockPool; removed: number[]; released: number[] } {
  const removed: number[] = [];
  const released: number[] = [];
  const context = {
    seqRemove: (seq: number) => (removed.push(seq), true),
    stateSeqGet: (seq: number) => Promise.resolve(new Uint8Array(10 * (seq + 1))),
  } as unknown as Context;
  const pool = new BlockPool(2048, 16);
  const releaseSequence = (seq: number): void => {
    pool.free(seq);
    released.push(seq);
  };
  const tiers = new AgentTiers(context, { pool, releaseSequence }, 1_000_000, undefined, () => undefined);
  return { tiers, pool, removed, released };
}

t.test('idle agents that mostly hold cells of their own are spilled; one whose prefix a running request joined stays', async (t) => {
  const { tiers, pool, removed, released } = setup();
  const evictions: string[] = [];
  tiers.onEvicted = (from, to) => void evictions.push(`${from}→${to}`);
  pool.resize(0, 320); // agent a: 20 blocks of its own
  tiers.park('a', 0, tokens(320), noLogits, 0);
  pool.resize(1, 64); // agent b: 4 blocks of its own
  tiers.park('b', 1, tokens(64, 1000), noLogits, 0);
  pool.resize(3, 300); // agent c: 19 blocks, 18 of them joined by the running request on sequence 2
  tiers.park('c', 3, tokens(300, 5000), noLogits, 0);
  pool.reserveShared(2, 320, 3, 18);
  t.equal(SPILL_MIN_OWN_CELLS, 256);
  t.equal(await tiers.spillIdleOwners(), 2, 'a and b leave');
  t.same(
    [...tiers.hot.entries()].map((e) => e.agentId),
    ['c'],
    'c keeps its cells in the context',
  );
  t.same(removed, [0, 1], "a's and b's cells are removed from the context");
  t.same(released, [0, 1]);
  t.same([tiers.ram.peek('a')?.own.byteLength, tiers.ram.peek('b')?.own.byteLength], [10, 20], 'their exported states are in the RAM tier');
  t.equal(pool.usedBlocks, 21, "c's 19 blocks and the running request's 2 fresh ones stay used");
  t.same(evictions, ['hot→ram', 'hot→ram'], 'each counted as an eviction (semantic_eviction_total)');
});

t.test('idle cells below the threshold stay: removing them would not narrow attention', async (t) => {
  const { tiers, pool, removed } = setup();
  pool.resize(0, 128);
  tiers.park('a', 0, tokens(128), noLogits, 0);
  pool.resize(1, 112);
  tiers.park('b', 1, tokens(112, 1000), noLogits, 0);
  t.equal(await tiers.spillIdleOwners(), 0, '240 idle cells in all: nobody leaves');
  t.equal(tiers.hot.size, 2);
  t.same(removed, []);
  t.equal(await tiers.spillIdleOwners(240), 2, 'with a threshold of 240 both leave');
  t.equal(tiers.ram.size, 2);
});

t.test('agents sharing a prefix among themselves, none of them running, leave together', async (t) => {
  const { tiers, pool } = setup();
  pool.resize(0, 272); // a 256-token prefix + 16 own
  tiers.park('a', 0, tokens(272), noLogits, 0);
  pool.reserveShared(1, 272, 0, 16);
  tiers.park('b', 1, tokens(272), noLogits, 0);
  t.equal(await tiers.spillIdleOwners(), 2, 'no running request holds their prefix, so it would only widen attention');
  t.equal(pool.usedBlocks, 0, 'every block is free again');
  t.equal(tiers.ram.size, 2);
});

t.test('write-behind waits for a quiet engine, but no longer than WRITE_BUSY_LIMIT_MS past its due time', async (t) => {
  const context = { seqRemove: () => true, stateSeqGet: () => Promise.resolve(new Uint8Array(10)) } as unknown as Context;
  const pool = new BlockPool(2048, 16);
  const disk = new FakeDisk();
  const tiers = new AgentTiers(context, { pool, releaseSequence: () => undefined }, 0, disk as unknown as DiskTier, () => undefined);
  tiers.park('a', 0, tokens(20), noLogits, 0);
  t.equal(tiers.nextWriteDue, WRITE_DELAY_MS, 'an engine never busy writes at the due time');
  tiers.markBusy(100);
  t.equal(tiers.nextWriteDue, 100 + WRITE_DELAY_MS, 'busy at 100 ms: quiet from 350 ms');
  t.equal(await tiers.writeDue(300), 0, 'not at 300 ms');
  t.same(disk.writes, []);
  tiers.markBusy(10_000);
  t.equal(tiers.nextWriteDue, WRITE_DELAY_MS + WRITE_BUSY_LIMIT_MS, 'never quiet: written at the limit');
  t.equal(await tiers.writeDue(WRITE_DELAY_MS + WRITE_BUSY_LIMIT_MS), 1);
  t.same(disk.writes, ['a']);
});

/** Tiers with RAM of `ramBytes` and a fake disk; a sequence's export is 100 bytes, filled with its id. */
function withDisk(ramBytes: number): { tiers: AgentTiers; disk: FakeDisk; sizes: number[]; park: (agentId: string, seq: number) => void } {
  const sizes: number[] = [];
  const context = { seqRemove: () => true, stateSeqGet: (seq: number) => Promise.resolve(new Uint8Array(100).fill(seq)) } as unknown as Context;
  const pool = new BlockPool(2048, 16);
  const disk = new FakeDisk();
  const persist = disk.persist.bind(disk);
  disk.persist = (agentId, held, state) => (sizes.push(state.byteLength), persist(agentId, held, state));
  const tiers = new AgentTiers(context, { pool, releaseSequence: (seq) => pool.free(seq) }, ramBytes, disk as unknown as DiskTier, () => undefined);
  /** An idle agent with 20 cells of its own on sequence `seq`, its turn ended at 0 ms. */
  const park = (agentId: string, seq: number): void => {
    pool.resize(seq, 20);
    tiers.park(agentId, seq, tokens(20, 100 * seq), noLogits, 0);
  };
  return { tiers, disk, sizes, park };
}

t.test("a spill to RAM leaves the turn's write pending, written from RAM when due; RAM keeps its copy", async (t) => {
  const { tiers, disk, sizes, park } = withDisk(1000);
  park('a', 0);
  t.equal(await tiers.spillIdleOwners(1), 1);
  t.same(disk.writes, [], 'the spill itself writes nothing');
  t.equal(tiers.nextWriteDue, WRITE_DELAY_MS, 'the write keeps its due time');
  t.equal(await tiers.writeDue(WRITE_DELAY_MS), 1);
  t.same(disk.writes, ['a']);
  t.same(sizes, [100], 'the whole state was written');
  t.equal(tiers.ram.peek('a')?.own.byteLength, 100, "the RAM tier's state is intact (the writer got a copy)");
  t.equal(tiers.nextWriteDue, undefined, 'nothing left to write');
});

t.test('a RAM entry pushed out by the budget before its write is due is written at once; one that came back is not', async (t) => {
  const { tiers, disk, park } = withDisk(250);
  const evictions: string[] = [];
  tiers.onEvicted = (from, to) => void evictions.push(`${from}→${to}`);
  park('a', 0);
  park('b', 1);
  t.equal(await tiers.spillIdleOwners(1), 2, 'a and b are in RAM: 200 of 250 bytes');
  t.same(disk.writes, []);
  park('c', 2);
  t.ok(tiers.ram.take('b'), 'b returns (its next turn will write)');
  await tiers.spillIdleOwners(1);
  park('d', 3);
  await tiers.spillIdleOwners(1);
  t.same(disk.writes, ['a'], 'd pushed a out of RAM: a was written then, b never');
  t.same(evictions, ['hot→ram', 'hot→ram', 'hot→ram', 'ram→disk', 'hot→ram'], 'a left RAM for its file (semantic_eviction_total)');
  t.equal(await tiers.writeDue(Infinity), 2, 'a drain writes the rest from RAM');
  t.same(disk.writes, ['a', 'c', 'd']);
});

t.test('evicting an agent whose turn waits in RAM writes that turn first', async (t) => {
  const { tiers, disk, park } = withDisk(1000);
  disk.files.set('a', { agentId: 'a', bytes: 50, lastUsed: 1, tokens: 5 }); // an older turn's file
  park('a', 0);
  await tiers.spillIdleOwners(1);
  t.same(await tiers.evict('a'), ['ram']);
  t.same(disk.writes, ['a'], 'the file had an older turn: the RAM one is written before it leaves');
  t.equal(await tiers.writeDue(Infinity), 0, 'and no longer pending');
});

/** Tiers with a scratch sequence (unified KV): exports go through it, each piece sized by the positions copied there. */
function withScratch(): { tiers: AgentTiers; disk: FakeDisk; copies: [number, number][]; cancelled: () => number } {
  const copies: [number, number][] = [];
  let last: [number, number] = [0, 0];
  const context = {
    seqRemove: () => true,
    seqCopy: (_src: number, _dst: number, p0: number, p1: number) => (last = [p0, p1 === -1 ? 2500 : p1]),
    stateSeqGet: () => (copies.push(last), Promise.resolve(new Uint8Array(last[1] - last[0]))),
  } as unknown as Context;
  const pool = new BlockPool(4096, 16);
  const disk = new FakeDisk();
  let cancels = 0;
  disk.cancel = () => void cancels++;
  const tiers = new AgentTiers(context, { pool, releaseSequence: () => undefined }, 0, disk as unknown as DiskTier, () => undefined, 16, 7);
  return { tiers, disk, copies, cancelled: () => cancels };
}

t.test('a write that falls due while requests run is exported one bounded piece a boundary, then written whole', async (t) => {
  const { tiers, disk, copies } = withScratch();
  tiers.park('a', 0, tokens(2500), noLogits, 0);
  const due = WRITE_DELAY_MS + WRITE_BUSY_LIMIT_MS;
  tiers.markBusy(due); // requests ran until now: the write goes at its limit, in pieces
  t.equal(EXPORT_PIECE_CELLS, 1024);
  t.equal(await tiers.writeDue(due), 0, 'first boundary: one piece, nothing written yet');
  t.same(copies, [[0, 1024]]);
  t.equal(tiers.nextWriteDue, due, 'the rest is still due');
  t.equal(await tiers.writeDue(due + 30), 0);
  t.equal(await tiers.writeDue(due + 60), 1, 'third boundary: the last piece, and the write');
  t.same(copies, [
    [0, 1024],
    [1024, 2048],
    [2048, 2500],
  ]);
  t.same(disk.pieces, [[1024, 1024, 452]], 'the writer gets the pieces in position order');
  t.same(disk.writes, ['a']);
  t.equal(tiers.nextWriteDue, undefined);
});

t.test('a quiet engine exports a due write in one piece', async (t) => {
  const { tiers, disk, copies } = withScratch();
  tiers.park('a', 0, tokens(2500), noLogits, 0);
  t.equal(await tiers.writeDue(WRITE_DELAY_MS), 1);
  t.same(copies, [[0, 2500]]);
  t.same(disk.pieces, [[2500]]);
});

t.test('an agent that comes back during a piecewise export is not written, and the plan is given back', async (t) => {
  const { tiers, disk, copies, cancelled } = withScratch();
  tiers.park('a', 0, tokens(2500), noLogits, 0);
  const due = WRITE_DELAY_MS + WRITE_BUSY_LIMIT_MS;
  tiers.markBusy(due);
  t.equal(await tiers.writeDue(due), 0);
  t.ok(tiers.hot.take('a'), 'a returns');
  t.equal(await tiers.writeDue(due + 30), 0);
  t.same(copies, [[0, 1024]], 'no more pieces');
  t.same(disk.writes, []);
  t.equal(cancelled(), 1, 'the planned write was cancelled');
  t.equal(tiers.nextWriteDue, undefined);
  tiers.park('a', 0, tokens(2500, 1), noLogits, due + 100);
  t.equal(await tiers.writeDue(Infinity), 1, 'its next turn is written (a drain: in one piece)');
  t.same(disk.pieces, [[2500]]);
});
