// AgentTurns: one agent's requests start one at a time in arrival order; other agents never wait.
// A turn that waits behind its agent's holds a place in the queue budget until it starts.
import t from 'tap';
import { AgentTurns, isFork, type Turn } from '../../worker/engine/agent-turns.js';
import { QueueBudget } from '../../worker/engine/queue-budget.js';
import type { GenerateMessage } from '../../shared/protocol/messages.js';

const budget = (maxQueued = 64, maxQueuedPerAgent = 64, maxQueuedTokens = Infinity) => new QueueBudget({ maxQueued, maxQueuedTokens, maxQueuedPerAgent });
/** A turn of 10 prompt tokens and 5 max tokens: 15 tokens in the budget. */
const turn = (requestId: string, agentId: string, agentIdDerived?: boolean): Turn => ({
  request: { requestId, agentId, ...(agentIdDerived === undefined ? {} : { agentIdDerived }) } as GenerateMessage,
  prompt: new Int32Array(10),
  maxTokens: 5,
});
const ids = (turns: Turn[]): string[] => turns.map((r) => r.request.requestId);
/** What the engine does with a request: tokenizes it (here: 10 prompt tokens, 5 max tokens; 'bad' is a 400). */
const tokenize = (request: GenerateMessage): Turn => {
  if (request.requestId === 'bad') throw new Error('too big for the context');
  return { request, prompt: new Int32Array(10), maxTokens: 5 };
};
/** The turns to start at the next boundary; refusals are collected in `failed`. */
const startable = (turns: AgentTurns, failed: string[] = []): Turn[] =>
  turns.takeStartable(tokenize, (requestId, error) => failed.push(`${requestId}: ${(error as { code?: string; message: string }).code ?? (error as Error).message}`));
/** What became of each arriving turn: its id when it starts, else 'waiting' or the refusal. */
const arrive = (turns: AgentTurns, ...arriving: Turn[]): string[] =>
  arriving.map((t) => {
    const arrival = turns.arrive(t);
    return typeof arrival === 'string' ? arrival : arrival.start.request.agentId;
  });

t.test("an agent's later requests wait for its turn to end, then start in order", async (t) => {
  const queue = budget();
  const turns = new AgentTurns(queue);
  t.same(arrive(turns, turn('a1', 'a'), turn('b1', 'b'), turn('a2', 'a'), turn('a3', 'a')), ['a', 'b', 'waiting', 'waiting']);
  t.same([queue.size, queue.tokens, queue.waitingOf('a')], [2, 30, 2], 'a2 and a3 hold places');
  t.same(arrive(turns, turn('b2', 'b')), ['waiting'], 'b is busy too');
  t.equal(turns.hasIncoming, false);
  turns.turnEnded('a');
  t.equal(turns.hasIncoming, true);
  t.same(ids(startable(turns)), ['a2'], 'a2 is next; a3 waits behind it');
  t.equal(queue.waitingOf('a'), 2, 'a2 keeps its place until admission starts it');
  turns.turnEnded('b');
  turns.turnEnded('a');
  t.same(ids(startable(turns)), ['b2', 'a3'], 'in the order their agents became free');
  turns.turnEnded('a');
  turns.turnEnded('b');
  t.equal(turns.isBusy('a'), false);
  t.same(arrive(turns, turn('a4', 'a')), ['a'], 'a free agent starts at once');
});

t.test("one agent's waiting turns are bounded by its share and by the queue", async (t) => {
  const queue = budget(3, 2);
  const turns = new AgentTurns(queue);
  t.same(arrive(turns, turn('a1', 'a'), turn('a2', 'a'), turn('a3', 'a'), turn('a4', 'a')), ['a', 'waiting', 'waiting', 'agent-queue-full']);
  t.same(arrive(turns, turn('b1', 'b'), turn('b2', 'b'), turn('b3', 'b')), ['b', 'waiting', 'queue-full'], 'the queue holds 3 in all');
  t.same([queue.size, queue.waitingOf('a'), queue.waitingOf('b')], [3, 2, 1]);
  t.equal(turns.remove('a2'), true, 'a waiting turn aborted');
  t.same([queue.size, queue.waitingOf('a')], [2, 1], 'its place is given back');
  t.same(arrive(turns, turn('a5', 'a')), ['waiting']);
});

t.test('removing a request that has not started, and taking everything', async (t) => {
  const queue = budget();
  const turns = new AgentTurns(queue);
  turns.submit(turn('c1', 'c').request);
  t.equal(turns.isBusy('c'), true, 'submitted counts as busy');
  t.equal(turns.remove('c1'), true, 'from the submitted list');
  t.same(startable(turns), []);
  arrive(turns, turn('a1', 'a'), turn('a2', 'a'), turn('a3', 'a'));
  t.equal(turns.remove('a1'), false, 'a started request is not here');
  turns.turnEnded('a');
  t.equal(turns.remove('a2'), true, 'a2 was next in line');
  t.same(ids(startable(turns)), ['a3'], "removing it passed the agent's turn on to a3");
  queue.leave('a3'); // as admission does when it starts a3
  turns.submit(turn('d1', 'd').request);
  arrive(turns, turn('a4', 'a'));
  t.equal(turns.isBusy('d'), true);
  t.same(
    turns.takeAll().map((r) => r.requestId),
    ['d1', 'a4'],
  );
  t.same([queue.size, queue.tokens], [0, 0], 'every place given back');
  t.same(arrive(turns, turn('a5', 'a')), ['a'], 'nothing left, no agent busy');
});

t.test("a derived agent's request that finds it busy starts at once as a fork; a named agent's waits", async (t) => {
  const queue = budget(64, 0);
  const turns = new AgentTurns(queue);
  const started = arrive(turns, turn('c1', 'conv-1', true), turn('c2', 'conv-1', true), turn('a1', 'a'), turn('c3', 'conv-1', true));
  t.same(started, ['conv-1', 'conv-1#c2', 'a', 'conv-1#c3'], 'c2 and c3 run beside c1 under ids of their own');
  t.same(started.map(isFork), [false, true, false, true]);
  t.same(arrive(turns, turn('a2', 'a')), ['agent-queue-full'], 'with no share, a named agent may not wait');
  t.equal(queue.size, 0, 'forks never hold places here');
  turns.turnEnded('conv-1#c2');
  t.equal(turns.isBusy('conv-1'), true, "a fork's end leaves the agent's own turn running");
  turns.turnEnded('conv-1');
  t.same(arrive(turns, turn('c5', 'conv-1', true)), ['conv-1'], 'with the agent free, c5 is its own turn again');
});

t.test('submitted requests are tokenized at the boundary: a 400 at once, a 429 when no place, the rest start or wait', async (t) => {
  const queue = budget(64, 1);
  const turns = new AgentTurns(queue);
  for (const [id, agent] of [
    ['a1', 'a'],
    ['bad', 'a'],
    ['a2', 'a'],
    ['b1', 'b'],
    ['a3', 'a'],
  ] as const)
    turns.submit(turn(id, agent).request);
  t.equal(turns.hasIncoming, true);
  const failed: string[] = [];
  t.same(ids(startable(turns, failed)), ['a1', 'b1']);
  t.same(failed, ['bad: too big for the context', 'a3: ERR_AGENT_QUEUE_FULL'], "bad never waited; a3 found a's share taken by a2");
  t.same([queue.size, queue.waitingOf('a')], [1, 1]);
  t.equal(turns.hasIncoming, false);
});
