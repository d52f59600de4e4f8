// BlockPool: exact block ids, FIFO free-list order, "no room" as null, and a seeded randomised
// invariant test (free + used = total, no block owned twice, nothing leaks once every request ends).
import t from 'tap';
import { BlockPool } from '../../worker/engine/kv/block-pool.js';

t.test('hands out blocks from the head of the free list, takes them back at its tail, last block first', async (t) => {
  const pool = new BlockPool(100, 16);
  t.equal(pool.totalBlocks, 6, 'whole blocks only: 100 cells hold 6 blocks of 16');
  t.equal(pool.capacityTokens, 96);
  t.same(pool.resize(0, 20), [0, 1], '20 tokens take 2 blocks');
  t.same(pool.resize(1, 33), [2, 3, 4]);
  t.equal(pool.freeBlocks, 1);
  t.equal(pool.utilisation, 5 / 6);
  t.same(pool.resize(1, 16), [2], 'shrinking gives back the tail blocks');
  t.same(pool.resize(2, 48), [5, 4, 3], 'the old free block first, then the freed ones, last freed last');
  t.equal(pool.resize(0, 40), null, 'a third block for sequence 0: no room');
  t.same(pool.blocksOf(0), [0, 1], 'and nothing changed');
  t.equal(pool.growthFor(0, 40), 1);
  t.equal(pool.growthFor(2, 1), -2);
  pool.free(2);
  pool.free(0);
  t.equal(pool.resize(3, 96), null, 'six blocks are not free while sequence 1 holds one');
  t.same(pool.resize(3, 80), [3, 4, 5, 1, 0], 'free order: 3 4 5 (sequence 2, last block first), then 1 0 (sequence 0)');
  t.equal(pool.usedBlocks, 6);
  t.equal(pool.resize(4, 0)?.length, 0, 'zero tokens need no block, even when the pool is full');
});

t.test('rejects a block size that is not a positive integer', async (t) => {
  t.throws(() => new BlockPool(64, 0), RangeError);
  t.throws(() => new BlockPool(64, 1.5), RangeError);
});

/** mulberry32: a tiny seeded PRNG, so a failure reproduces exactly. */
function random(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let x = Math.imul(a ^ (a >>> 15), 1 | a);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

t.test('random requests never break the invariants and leak nothing', async (t) => {
  for (const seed of [1, 2, 3, 42, 1234]) {
    const next = random(seed);
    const pool = new BlockPool(1000, 16);
    const held = new Map<number, number>();
    let refusals = 0;
    for (let op = 0; op < 2000; op++) {
      const seqId = Math.floor(next() * 12);
      const tokens = next() < 0.2 ? 0 : Math.floor(next() * 400);
      const result = pool.resize(seqId, tokens);
      if (result === null) refusals++;
      else if (tokens === 0) held.delete(seqId);
      else held.set(seqId, tokens);
      const owned = [...held.keys()].flatMap((id) => [...pool.blocksOf(id)]);
      if (pool.freeBlocks + pool.usedBlocks !== pool.totalBlocks || owned.length !== pool.usedBlocks || new Set(owned).size !== owned.length) {
        t.fail(`seed ${seed}, op ${op}: free ${pool.freeBlocks} + used ${pool.usedBlocks} of ${pool.totalBlocks}, ${owned.length} owned`);
        return;
      }
      for (const [id, n] of held) {
        if (pool.blocksOf(id).length !== pool.blocksFor(n)) return t.fail(`seed ${seed}, op ${op}: sequence ${id} holds the wrong number of blocks`);
      }
    }
    for (const id of held.keys()) pool.free(id);
    t.equal(pool.freeBlocks, pool.totalBlocks, `seed ${seed}: every block is free once every request ended`);
    t.ok(refusals > 0, `seed ${seed}: the pool ran out ${refusals} times (the test reached "no room")`);
    t.same(
      [...(pool.resize(0, pool.capacityTokens) ?? [])].sort((a, b) => a - b),
      Array.from({ length: pool.totalBlocks }, (_, i) => i),
      `seed ${seed}: the free list holds each block exactly once`,
    );
  }
});

t.test("a sequence that joins another one's cells holds its first blocks: shared blocks count once and free with their last holder", async (t) => {
  const pool = new BlockPool(160, 16); // 10 blocks
  t.same(pool.resize(0, 64), [0, 1, 2, 3], 'sequence 0: a 64-token prefix');
  t.same(pool.reserveShared(1, 70, 0, 3), [0, 1, 2, 4, 5], 'sequence 1 joins 3 blocks of it and takes 2 fresh ones for 70 tokens');
  t.equal(pool.usedBlocks, 6, 'the 3 shared blocks are counted once');
  t.equal(pool.ownBlocks(0), 1, "only block 3 is sequence 0's alone");
  t.equal(pool.ownBlocks(1), 2);
  t.equal(pool.freedBy([0]), 1, 'spilling sequence 0 alone frees one block');
  t.equal(pool.freedBy([0, 1]), 6, 'spilling both frees all six');
  t.equal(pool.reserveShared(2, 200, 0, 3), null, '3 shared + 10 fresh blocks do not fit in 4 free');
  t.equal(pool.reserveShared(2, 40, 0, 5), null, 'sequence 0 holds only 4 blocks');
  t.equal(pool.reserveShared(0, 40, 0, 2), null, 'a sequence cannot share with itself');
  t.equal(pool.usedBlocks, 6, 'refusals change nothing');
  pool.free(0);
  t.same(pool.blocksOf(1), [0, 1, 2, 4, 5], 'sequence 1 keeps the shared blocks when sequence 0 lets go');
  t.equal(pool.usedBlocks, 5, "only sequence 0's own block came back");
  t.same(pool.resize(1, 20), [0, 1], 'shrinking drops the last blocks first');
  pool.free(1);
  t.equal(pool.freeBlocks, 10, 'everything is free once the last holder lets go');
});

t.test('re-sharing onto a sequence that already holds blocks drops them first', async (t) => {
  const pool = new BlockPool(160, 16);
  pool.resize(0, 48); // [0 1 2]
  pool.resize(1, 32); // [3 4]
  t.same(pool.reserveShared(1, 64, 0, 2), [0, 1, 5, 6], 'its own two blocks go back to the free list; 2 shared + 2 fresh');
  t.same(pool.reserveShared(1, 64, 0, 3), [0, 1, 2, 7], 'sharing again with more blocks');
  t.equal(pool.usedBlocks, 4, 'blocks 0-2 counted once, 7 for sequence 1');
  t.equal(pool.freedBy([1]), 1);
});

t.test('random resizes and shares never break the invariants and leak nothing', async (t) => {
  for (const seed of [7, 8, 9]) {
    const next = random(seed);
    const pool = new BlockPool(1000, 16);
    const live = new Set<number>();
    for (let op = 0; op < 3000; op++) {
      const seqId = Math.floor(next() * 10);
      const source = Math.floor(next() * 10);
      const tokens = Math.floor(next() * 400);
      const result = next() < 0.3 ? pool.reserveShared(seqId, tokens, source, Math.floor(next() * 5)) : pool.resize(seqId, tokens);
      if (result !== null && result.length > 0) live.add(seqId);
      if (result !== null && result.length === 0) live.delete(seqId);
      const distinct = new Set([...live].flatMap((id) => [...pool.blocksOf(id)]));
      if (distinct.size !== pool.usedBlocks || pool.freeBlocks + pool.usedBlocks !== pool.totalBlocks) {
        return t.fail(`seed ${seed}, op ${op}: ${distinct.size} distinct blocks held, ${pool.usedBlocks} used, ${pool.freeBlocks} free`);
      }
    }
    t.equal(pool.freedBy(live), pool.usedBlocks, `seed ${seed}: releasing every holder would free every used block`);
    for (const id of live) pool.free(id);
    t.equal(pool.freeBlocks, pool.totalBlocks, `seed ${seed}: nothing leaks`);
    t.equal(new Set(pool.resize(0, pool.capacityTokens) ?? []).size, pool.totalBlocks, `seed ${seed}: each block is on the free list once`);
  }
});
