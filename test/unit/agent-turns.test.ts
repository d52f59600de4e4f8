// AgentTurns: one agent's requests start one at a time in arrival order; other agents never wait.
import t from 'tap';
import { AgentTurns } from '../../worker/engine/agent-turns.js';
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
