// Admission over the block pool: sequence ids and blocks for prompt + max tokens, a FIFO queue only
// for requests that fit once idle agents are spilled, 429 reasons otherwise, and returning agents
// that bring their own sequence.
import t from 'tap';
import { Admission } from '../../worker/engine/admission.js';
import { BlockPool } from '../../worker/engine/kv/block-pool.js';

const limits = (maxQueued = 8, maxQueuedTokens = Infinity) => ({ maxQueued, maxQueuedTokens });

t.test('starts while sequences and blocks last; refuses what cannot fit even after spilling', async (t) => {
  const admission = new Admission<string>(2, new BlockPool(160, 16), limits()); // 10 blocks
  t.same(admission.tryAdmit('a', 100, 0), { seqId: 0, tokens: 100 }, '7 blocks');
  t.same(admission.pool.blocksOf(0), [0, 1, 2, 3, 4, 5, 6]);
  t.equal(admission.tryAdmit('b', 60, 0), 'no-room', '4 blocks, 3 free, nothing to spill: 429 at once');
  t.equal(admission.tryAdmit('b', 60, 1), 'queued', '4 blocks: fits once an idle agent holding 1 block is spilled');
  t.same(admission.headShortfall(), { sequence: false, blocks: 1 });
  t.equal(admission.tryAdmit('c', 16, 1), 'no-room', 'the free blocks are promised to b');
  t.same(admission.startQueued(), [], 'b still lacks a block');
  admission.releaseSequence(0);
  t.same(admission.startQueued(), [{ item: 'b', reservation: { seqId: 1, tokens: 60 } }]);
  t.same(admission.pool.blocksOf(1), [7, 8, 9, 6]);
  t.equal(admission.freeSequences, 1);
});

t.test('a request waits for a sequence id, and the queue is bounded by count', async (t) => {
  const admission = new Admission<string>(1, new BlockPool(1024, 16), limits(1));
  t.same(admission.tryAdmit('a', 10, 0), { seqId: 0, tokens: 10 });
  t.equal(admission.tryAdmit('b', 10, 0), 'queued', 'blocks are free, the only sequence is not');
  t.same(admission.headShortfall(), { sequence: true, blocks: 0 });
  t.equal(admission.tryAdmit('c', 10, 0), 'queue-full');
  admission.releaseSequence(0);
  t.same(admission.startQueued(), [{ item: 'b', reservation: { seqId: 0, tokens: 10 } }]);
  t.equal(admission.headShortfall(), undefined, 'empty queue');
});

t.test('FIFO: a small request does not overtake a queued big one', async (t) => {
  const admission = new Admission<string>(4, new BlockPool(160, 16), limits());
  admission.tryAdmit('a', 144, 0);
  t.equal(admission.tryAdmit('big', 80, 9), 'queued');
  t.equal(admission.tryAdmit('small', 5, 9), 'queued', 'queued behind big although a block is free');
  admission.releaseSequence(0);
  t.same(
    admission.startQueued().map((s) => [s.item, s.reservation.seqId]),
    [['big', 1], ['small', 2]],
  );
});

t.test('a returning agent brings its sequence and asks only for the blocks it lacks', async (t) => {
  const admission = new Admission<string>(2, new BlockPool(160, 16), limits());
  admission.tryAdmit('first turn', 40, 0); // seq 0, 3 blocks
  t.ok(admission.resize({ seqId: 0, tokens: 40 }, 20), 'its finished turn keeps 20 cells: 2 blocks');
  admission.tryAdmit('other', 96, 0); // seq 1, 6 blocks: 2 free
  t.same(admission.tryAdmit('second turn', 64, 0, 0), { seqId: 0, tokens: 64 }, '4 blocks: grows by 2, needs no new sequence');
  t.same(admission.pool.blocksOf(0), [0, 1, 9, 2], 'block 2, given back when the turn ended, comes last');
  t.equal(admission.freeSequences, 0);
});

t.test('queued requests can be removed and drained', async (t) => {
  const admission = new Admission<string>(1, new BlockPool(160, 16), limits());
  admission.tryAdmit('a', 10, 0);
  admission.tryAdmit('b', 1, 0);
  admission.tryAdmit('c', 1, 0);
  t.equal(admission.removeQueued((x) => x === 'b'), 'b');
  t.equal(admission.removeQueued((x) => x === 'zz'), undefined);
  t.same(admission.takeAllQueued(), ['c']);
  t.equal(admission.queued, 0);
});

t.test('the queue is bounded by tokens too, and its limits change at run time', async (t) => {
  const admission = new Admission<string>(1, new BlockPool(1024, 16), limits(10, 150));
  admission.tryAdmit('running', 100, 0);
  t.equal(admission.tryAdmit('a', 100, 0), 'queued', '100 waiting tokens');
  t.equal(admission.tryAdmit('b', 60, 0), 'queue-full', '160 would exceed 150');
  t.equal(admission.tryAdmit('c', 50, 0), 'queued', '150 fits exactly');
  t.equal(admission.queuedTokens, 150);
  admission.setLimits(limits(10, 1000));
  t.equal(admission.tryAdmit('d', 60, 0), 'queued');
});

t.test('a request that joins another sequence\'s cells starts with free blocks for the rest only', async (t) => {
  const admission = new Admission<string>(3, new BlockPool(160, 16), limits()); // 10 blocks
  t.same(admission.tryAdmit('prefix owner', 96, 0), { seqId: 0, tokens: 96 }, '6 blocks');
  t.equal(admission.tryAdmit('unshared', 100, 0), 'no-room', '7 blocks do not fit in 4');
  t.same(admission.tryAdmit('sharer', 100, 0, undefined, { seqId: 0, blocks: 5 }), { seqId: 1, tokens: 100, sharedWith: 0 }, '5 shared + 2 fresh');
  t.same(admission.pool.blocksOf(1), [0, 1, 2, 3, 4, 6, 7]);
  t.equal(admission.pool.freeBlocks, 2);
  t.equal(admission.tryAdmit('too big', 140, 0, undefined, { seqId: 0, blocks: 5 }), 'no-room', '5 shared + 4 fresh do not fit in 2, nor does it unshared');
  admission.releaseSequence(0);
  t.equal(admission.pool.freeBlocks, 3, 'the owner ends: only its own block comes back, the sharer keeps the rest');
  admission.releaseSequence(1);
  t.equal(admission.pool.freeBlocks, 10);
});

t.test('a shared start does not take blocks promised to the queue', async (t) => {
  const admission = new Admission<string>(4, new BlockPool(160, 16), limits());
  admission.tryAdmit('owner', 96, 0); // 6 blocks, 4 free
  t.equal(admission.tryAdmit('waiting', 80, 6), 'queued', '5 blocks: waits for a spill');
  t.equal(admission.tryAdmit('sharer', 100, 10, undefined, { seqId: 0, blocks: 5 }), 'queued', 'behind the queue it is sized in full (7 blocks) and waits too');
  t.same(admission.headShortfall(), { sequence: false, blocks: 1 }, 'the head still lacks one block');
  t.equal(admission.queued, 2);
});

t.test('a request sized in full that joins another sequence\'s cells when it starts holds those blocks instead', async (t) => {
  const admission = new Admission<string>(2, new BlockPool(160, 16), limits()); // 10 blocks
  admission.tryAdmit('a', 64, 0); // sequence 0: blocks 0-3
  const b = admission.tryAdmit('b', 80, 0);
  if (typeof b === 'string') return t.fail(`b was not admitted: ${b}`);
  t.same(admission.pool.blocksOf(1), [4, 5, 6, 7, 8], 'sized in full, as a queued request is');
  admission.joinShared(b, { seqId: 0, blocks: 4 });
  t.same(admission.pool.blocksOf(1), [0, 1, 2, 3, 9], "a's 4 blocks and one fresh block for the rest");
  t.equal(admission.pool.usedBlocks, 5, 'the shared blocks count once; the 5 fresh ones it held are free again');
  t.equal(b.sharedWith, 0);
  admission.joinShared(b, { seqId: 0, blocks: 2 });
  t.same(admission.pool.blocksOf(1), [0, 1, 2, 3, 9], 'joining again changes nothing');
});
