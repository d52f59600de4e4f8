// Admission over the block pool: sequence ids and blocks for prompt + max tokens, a bounded FIFO
// queue for requests that must wait (for a sequence, for blocks running requests hold, or for idle
// agents to be spilled), 429 reasons otherwise, and returning agents that bring their own sequence.
import t from 'tap';
import { Admission } from '../../worker/engine/admission.js';
import { BlockPool } from '../../worker/engine/kv/block-pool.js';
import { QueueBudget } from '../../worker/engine/queue-budget.js';

const budget = (maxQueued = 8, maxQueuedTokens = Infinity) => new QueueBudget({ maxQueued, maxQueuedTokens, maxQueuedPerAgent: Infinity });
/** Items are their own request id and agent id. */
const admissionOf = (sequences: number, cells: number, queue = budget()) =>
  new Admission<string>(sequences, new BlockPool(cells, 16), queue, (item) => ({ requestId: item, agentId: item }));

t.test('a request that fits the context waits for the blocks running requests hold, then starts in order', async (t) => {
  const queue = budget();
  const admission = admissionOf(2, 160, queue); // 10 blocks
  t.same(admission.tryAdmit('a', 100), { seqId: 0, tokens: 100 }, '7 blocks');
  t.same(admission.pool.blocksOf(0), [0, 1, 2, 3, 4, 5, 6]);
  t.equal(admission.tryAdmit('b', 60), 'queued', '4 blocks, 3 free: it waits for a to end, not a 429');
  t.same(admission.headShortfall(), { sequence: false, blocks: 1 });
  t.equal(admission.tryAdmit('c', 16), 'queued', 'one block is free, but b came first');
  t.same([queue.size, queue.tokens], [2, 76], 'both hold a place in the budget');
  t.same(admission.startQueued(), [], 'b still lacks a block');
  admission.releaseSequence(0);
  t.same(admission.startQueued(), [
    { item: 'b', reservation: { seqId: 1, tokens: 60 } },
    { item: 'c', reservation: { seqId: 0, tokens: 16 } },
  ]);
  t.same(admission.pool.blocksOf(1), [7, 8, 9, 6]);
  t.same(admission.pool.blocksOf(0), [5]);
  t.same([queue.size, queue.tokens], [0, 0], 'started requests give their places back');
});

t.test('a request waits for a sequence id, and the queue is bounded by count', async (t) => {
  const admission = admissionOf(1, 1024, budget(1));
  t.same(admission.tryAdmit('a', 10), { seqId: 0, tokens: 10 });
  t.equal(admission.tryAdmit('b', 10), 'queued', 'blocks are free, the only sequence is not');
  t.same(admission.headShortfall(), { sequence: true, blocks: 0 });
  t.equal(admission.tryAdmit('c', 10), 'queue-full');
  admission.releaseSequence(0);
  t.same(admission.startQueued(), [{ item: 'b', reservation: { seqId: 0, tokens: 10 } }]);
  t.equal(admission.headShortfall(), undefined, 'empty queue');
});

t.test('FIFO: a small request does not overtake a queued big one', async (t) => {
  const admission = admissionOf(4, 160);
  admission.tryAdmit('a', 144);
  t.equal(admission.tryAdmit('big', 80), 'queued');
  t.equal(admission.tryAdmit('small', 5), 'queued', 'queued behind big although a block is free');
  admission.releaseSequence(0);
  t.same(
    admission.startQueued().map((s) => [s.item, s.reservation.seqId]),
    [
      ['big', 1],
      ['small', 2],
    ],
  );
});

t.test('a returning agent brings its sequence and asks only for the blocks it lacks', async (t) => {
  const admission = admissionOf(2, 160);
  admission.tryAdmit('first turn', 40); // seq 0, 3 blocks
  t.ok(admission.resize({ seqId: 0, tokens: 40 }, 20), 'its finished turn keeps 20 cells: 2 blocks');
  admission.tryAdmit('other', 96); // seq 1, 6 blocks: 2 free
  t.same(admission.tryAdmit('second turn', 64, 0), { seqId: 0, tokens: 64 }, '4 blocks: grows by 2, needs no new sequence');
  t.same(admission.pool.blocksOf(0), [0, 1, 9, 2], 'block 2, given back when the turn ended, comes last');
  t.equal(admission.freeSequences, 0);
});

t.test('queued requests can be removed and drained, giving their places back', async (t) => {
  const queue = budget();
  const admission = admissionOf(1, 160, queue);
  admission.tryAdmit('a', 10);
  admission.tryAdmit('b', 1);
  admission.tryAdmit('c', 1);
  admission.tryAdmit('d', 1);
  t.equal(
    admission.removeQueued((x) => x === 'b'),
    'b',
  );
  t.equal(
    admission.removeQueued((x) => x === 'zz'),
    undefined,
  );
  t.equal(admission.removeHead(), 'c');
  t.same(admission.takeAllQueued(), ['d']);
  t.same([admission.queued, queue.size, queue.tokens], [0, 0, 0]);
});

t.test('the queue is bounded by tokens too, and its limits change at run time', async (t) => {
  const queue = budget(10, 150);
  const admission = admissionOf(1, 1024, queue);
  admission.tryAdmit('running', 100);
  t.equal(admission.tryAdmit('a', 100), 'queued', '100 waiting tokens');
  t.equal(admission.tryAdmit('b', 60), 'queue-full', '160 would exceed 150');
  t.equal(admission.tryAdmit('c', 50), 'queued', '150 fits exactly');
  t.equal(queue.tokens, 150);
  queue.setLimits({ maxQueuedTokens: 1000 });
  t.equal(admission.tryAdmit('d', 60), 'queued');
});

t.test('a request that already holds a place (it waited behind its agent) is never refused for a full queue', async (t) => {
  const queue = budget(1);
  const admission = admissionOf(1, 1024, queue);
  admission.tryAdmit('running', 100);
  t.equal(queue.enter({ requestId: 'turn 2', agentId: 'turn 2' }, 50), undefined, 'its place, taken while it waited for its turn');
  t.equal(admission.tryAdmit('turn 2', 50), 'queued', 'the queue is full, but the place is its own');
  t.same([queue.size, queue.tokens], [1, 50], 'counted once');
});

t.test("a request that could never start beside the caches queued returning agents pin is refused 'no-room'", async (t) => {
  const admission = admissionOf(2, 160); // 10 blocks
  admission.tryAdmit('p, first turn', 48); // sequence 0, 3 blocks: its cache, kept hot
  t.same(admission.tryAdmit('runner', 112), { seqId: 1, tokens: 112 }, '7 blocks: none free');
  t.equal(admission.tryAdmit('x', 128), 'queued', '8 blocks: it waits for the runner');
  t.equal(admission.tryAdmit('p, second turn', 64, 0), 'no-room', 'waiting behind x, p would pin 3 blocks: x needs 8 + 3 > 10');
  t.equal(admission.queued, 1);
});

t.test('a returning agent whose cache holds all the blocks it needs starts although the free ones are promised', async (t) => {
  const admission = admissionOf(2, 160); // 10 blocks
  admission.tryAdmit('p, first turn', 112); // sequence 0, 7 blocks: its cache, kept hot
  t.same(admission.tryAdmit('runner', 48), { seqId: 1, tokens: 48 }, '3 blocks: none free');
  t.equal(admission.tryAdmit('x', 64), 'queued', '4 blocks: it waits for the runner');
  t.same(admission.tryAdmit('p, second turn', 80, 0), { seqId: 0, tokens: 80 }, '5 blocks of its 7: it starts, and gives 2 back');
  t.equal(admission.pool.freeBlocks, 2);
});

t.test('a queued returning agent may not pin the last sequence the head waits for', async (t) => {
  const admission = admissionOf(1, 160); // 1 sequence, 10 blocks
  admission.tryAdmit('a, first turn', 64); // sequence 0, 4 blocks, kept hot
  t.equal(admission.tryAdmit('x', 96), 'queued', 'no sequence free: x waits for a to be spilled');
  t.equal(admission.tryAdmit('a, second turn', 80, 0), 'no-room', 'it would keep sequence 0 while x waits for it');
});

t.test("a request that joins another sequence's cells starts with free blocks for the rest only", async (t) => {
  const admission = admissionOf(3, 160); // 10 blocks
  t.same(admission.tryAdmit('prefix owner', 96), { seqId: 0, tokens: 96 }, '6 blocks: 4 free');
  t.same(admission.tryAdmit('sharer', 100, undefined, { seqId: 0, blocks: 5 }), { seqId: 1, tokens: 100, sharedWith: 0 }, '5 shared + 2 fresh');
  t.same(admission.pool.blocksOf(1), [0, 1, 2, 3, 4, 6, 7]);
  t.equal(admission.pool.freeBlocks, 2);
  t.equal(admission.tryAdmit('too big', 140, undefined, { seqId: 0, blocks: 5 }), 'queued', '5 shared + 4 fresh do not fit in 2: it waits, sized in full');
  t.equal(admission.removeHead(), 'too big');
  admission.releaseSequence(0);
  t.equal(admission.pool.freeBlocks, 3, 'the owner ends: only its own block comes back, the sharer keeps the rest');
  admission.releaseSequence(1);
  t.equal(admission.pool.freeBlocks, 10);
});

t.test('a shared start does not take blocks promised to the queue', async (t) => {
  const admission = admissionOf(4, 160);
  admission.tryAdmit('owner', 96); // 6 blocks, 4 free
  t.equal(admission.tryAdmit('waiting', 80), 'queued', '5 blocks: waits for a spill or for the owner to end');
  t.equal(admission.tryAdmit('sharer', 100, undefined, { seqId: 0, blocks: 5 }), 'queued', 'behind the queue it is sized in full (7 blocks) and waits too');
  t.same(admission.headShortfall(), { sequence: false, blocks: 1 }, 'the head still lacks one block');
  t.equal(admission.queued, 2);
});

t.test("a request sized in full that joins another sequence's cells when it starts holds those blocks instead", async (t) => {
  const admission = admissionOf(2, 160); // 10 blocks
  admission.tryAdmit('a', 64); // sequence 0: blocks 0-3
  const b = admission.tryAdmit('b', 80);
  if (typeof b === 'string') return t.fail(`b was not admitted: ${b}`);
  t.same(admission.pool.blocksOf(1), [4, 5, 6, 7, 8], 'sized in full, as a queued request is');
  admission.joinShared(b, { seqId: 0, blocks: 4 });
  t.same(admission.pool.blocksOf(1), [0, 1, 2, 3, 9], "a's 4 blocks and one fresh block for the rest");
  t.equal(admission.pool.usedBlocks, 5, 'the shared blocks count once; the 5 fresh ones it held are free again');
  t.equal(b.sharedWith, 0);
  admission.joinShared(b, { seqId: 0, blocks: 2 });
  t.same(admission.pool.blocksOf(1), [0, 1, 2, 3, 9], 'joining again changes nothing');
});

t.test('seeded random load: every queued request starts in its turn, and nothing leaks', async (t) => {
  let seed = 13;
  const random = (n: number): number => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed % n);
  const queue = budget(3);
  const admission = new Admission<{ id: string; agent: string; seqId: number | undefined }>(3, new BlockPool(320, 16), queue, (item) => ({
    requestId: item.id,
    agentId: item.agent,
  }));
  const running = new Map<string, number>(); // agent → sequence
  const idle = new Map<string, number>(); // agent → sequence holding its cache
  const queuedAgents = new Set<string>();
  let stuck = 0;
  const outcomes = new Map<string, number>();
  const start = (item: { agent: string }, seqId: number): void => void (queuedAgents.delete(item.agent), running.set(item.agent, seqId));
  const endOne = (): void => {
    const [agent, seqId] = [...running][random(running.size)] as [string, number];
    running.delete(agent);
    admission.resize({ seqId, tokens: 0 }, 16 + random(160)); // its turn's cells, kept hot
    idle.set(agent, seqId);
  };
  const spillOne = (): void => {
    const [agent, seqId] = [...idle][0] as [string, number];
    idle.delete(agent);
    admission.releaseSequence(seqId);
  };
  for (let i = 0; i < 2000; i++) {
    const agent = `agent-${random(10)}`;
    if (random(3) === 0 && running.size > 0) endOne();
    else if (!running.has(agent) && !queuedAgents.has(agent)) {
      const seqId = idle.get(agent);
      idle.delete(agent);
      const item = { id: `r${i}`, agent, seqId };
      const outcome = admission.tryAdmit(item, 16 + random(300), seqId);
      const kind = typeof outcome === 'string' ? outcome : 'started';
      outcomes.set(kind, (outcomes.get(kind) ?? 0) + 1);
      if (outcome === 'queued') queuedAgents.add(agent);
      else if (typeof outcome !== 'string') start(item, outcome.seqId);
      else if (seqId !== undefined) idle.set(agent, seqId); // refused: its cache goes back
    }
    for (const { item, reservation } of admission.startQueued()) start(item, reservation.seqId);
    const short = admission.headShortfall();
    if (short !== undefined && running.size === 0) {
      if (idle.size > 0) spillOne();
      else stuck++;
    }
  }
  while (admission.queued > 0 && stuck === 0) {
    if (running.size > 0) endOne();
    else if (idle.size > 0) spillOne();
    else stuck++;
    for (const { item, reservation } of admission.startQueued()) start(item, reservation.seqId);
  }
  t.equal(stuck, 0, 'the head never waited with nothing running and nothing to spill');
  t.same([admission.queued, queue.size, queue.tokens], [0, 0, 0]);
  t.ok(
    ['started', 'queued', 'queue-full', 'no-room'].every((kind) => (outcomes.get(kind) ?? 0) > 0),
    `every outcome happened: ${JSON.stringify([...outcomes])}`,
  );
  while (running.size > 0) endOne();
  while (idle.size > 0) spillOne();
  t.same([admission.pool.freeBlocks, admission.freeSequences], [20, 3], 'every block and sequence is free again');
});
