// QueueBudget: one bound on everything waiting, by count, by tokens and per agent; places are held
// by request id, so entering again is free and leaving twice gives back nothing twice.
import t from 'tap';
import { QueueBudget, queueRefusalError } from '../../worker/engine/queue-budget.js';

const key = (requestId: string, agentId = requestId) => ({ requestId, agentId });

t.test('count, tokens and the per-agent share each refuse, the queue before the agent', async (t) => {
  const queue = new QueueBudget({ maxQueued: 3, maxQueuedTokens: 100, maxQueuedPerAgent: 2 });
  t.equal(queue.enter(key('a1', 'a'), 40), undefined);
  t.equal(queue.enter(key('a2', 'a'), 40), undefined);
  t.equal(queue.enter(key('a3', 'a'), 10), 'agent-queue-full', "a's share is 2");
  t.equal(queue.enter(key('b1', 'b'), 30), 'queue-full', '110 tokens would exceed 100');
  t.equal(queue.enter(key('b1', 'b'), 20), undefined, '100 fits exactly');
  t.equal(queue.enter(key('c1', 'c'), 0), 'queue-full', '3 requests wait');
  t.equal(queue.enter(key('a3', 'a'), 0), 'queue-full', 'a full queue is the reason given first');
  t.same([queue.size, queue.tokens, queue.waitingOf('a'), queue.waitingOf('b')], [3, 100, 2, 1]);
});

t.test('a place is held by request id: entering again keeps it, leaving gives it back once', async (t) => {
  const queue = new QueueBudget({ maxQueued: 1, maxQueuedTokens: 100, maxQueuedPerAgent: 1 });
  t.equal(queue.enter(key('a1', 'a'), 40), undefined);
  t.equal(queue.enter(key('a1', 'a'), 40), undefined, 'its own place: not refused although the queue is full');
  t.same([queue.size, queue.tokens], [1, 40], 'counted once');
  queue.leave('a1');
  queue.leave('a1');
  queue.leave('never-entered');
  t.same([queue.size, queue.tokens, queue.waitingOf('a')], [0, 0, 0]);
});

t.test('limits change at run time; places held stay', async (t) => {
  const queue = new QueueBudget({ maxQueued: 2, maxQueuedTokens: 100, maxQueuedPerAgent: 4 });
  queue.enter(key('a'), 10);
  queue.enter(key('b'), 10);
  queue.setLimits({ maxQueued: 1 });
  t.equal(queue.size, 2);
  t.equal(queue.enter(key('c'), 10), 'queue-full');
  queue.setLimits({ maxQueued: 5 });
  t.equal(queue.enter(key('c'), 10), undefined, 'the other limits were kept');
});

t.test('each refusal is a 429 with Retry-After and a code of its own', async (t) => {
  t.same(queueRefusalError('queue-full').toPayload(), { code: 'ERR_QUEUE_FULL', message: 'too many requests are waiting', retryAfter: 1 });
  t.match(queueRefusalError('agent-queue-full').toPayload(), { code: 'ERR_AGENT_QUEUE_FULL', message: /--max-queued-per-agent/, retryAfter: 1 });
});
