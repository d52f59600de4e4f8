// AgentTurns: one agent's requests start one at a time in arrival order; other agents never wait.
import t from 'tap';
import { AgentTurns, isFork } from '../../worker/engine/agent-turns.js';
import type { GenerateMessage } from '../../shared/protocol/messages.js';

const request = (requestId: string, agentId: string): GenerateMessage => ({ requestId, agentId }) as GenerateMessage;
const ids = (requests: GenerateMessage[]): string[] => requests.map((r) => r.requestId);

t.test("an agent's later requests wait for its turn to end, then start in order", async (t) => {
  const turns = new AgentTurns();
  for (const [id, agent] of [['a1', 'a'], ['b1', 'b'], ['a2', 'a'], ['a3', 'a']]) turns.submit(request(id as string, agent as string));
  t.same(ids(turns.takeStartable()), ['a1', 'b1']);
  t.equal(turns.hasIncoming, false);
  turns.submit(request('b2', 'b'));
  t.same(ids(turns.takeStartable()), [], 'b is busy too');
  turns.turnEnded('a');
  t.same(ids(turns.takeStartable()), ['a2'], 'a2 starts; a3 waits behind it');
  turns.turnEnded('a');
  turns.turnEnded('b');
  t.same(ids(turns.takeStartable()), ['b2', 'a3'], 'waiting requests go back in front of the queue');
});

t.test('removing a request that has not started, and taking everything', async (t) => {
  const turns = new AgentTurns();
  turns.submit(request('a1', 'a'));
  turns.takeStartable();
  turns.submit(request('a2', 'a'));
  turns.submit(request('c1', 'c'));
  t.equal(turns.remove('c1'), true, 'from the incoming list');
  turns.takeStartable();
  t.equal(turns.remove('a1'), false, 'a started request is not here');
  turns.submit(request('d1', 'd'));
  t.same(ids(turns.takeAll()), ['d1', 'a2']);
  t.same(ids(turns.takeStartable()), [], 'nothing left, no agent busy');
  turns.submit(request('a3', 'a'));
  t.same(ids(turns.takeStartable()), ['a3']);
});

t.test("a derived agent's request that finds it busy starts at once as a fork; a named agent's waits", async (t) => {
  const turns = new AgentTurns();
  const derived = (requestId: string, agentId: string): GenerateMessage => ({ ...request(requestId, agentId), agentIdDerived: true });
  for (const r of [derived('c1', 'conv-1'), derived('c2', 'conv-1'), request('a1', 'a'), request('a2', 'a'), derived('c3', 'conv-1')]) turns.submit(r);
  const started = turns.takeStartable();
  t.same(ids(started), ['c1', 'c2', 'a1', 'c3'], 'c2 and c3 run beside c1; a2 waits for a1');
  t.same(started.map((r) => r.agentId), ['conv-1', 'conv-1#c2', 'a', 'conv-1#c3'], 'forks get ids of their own');
  t.same(started.map((r) => isFork(r.agentId)), [false, true, false, true]);
  turns.turnEnded('conv-1#c2');
  t.equal(turns.isBusy('conv-1'), true, "a fork's end leaves the agent's own turn running");
  turns.submit(derived('c4', 'conv-1'));
  t.same(ids(turns.takeStartable()), ['c4'], 'c4 forks too');
  turns.turnEnded('conv-1');
  turns.turnEnded('a');
  turns.submit(derived('c5', 'conv-1'));
  const next = turns.takeStartable();
  t.same(ids(next), ['a2', 'c5']);
  t.same(next.map((r) => r.agentId), ['a', 'conv-1'], 'with the agent free, c5 is its own turn again');
});
