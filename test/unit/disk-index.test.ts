// The disk tier's accounting without a file system: bytes held per agent under a budget, least
// recently used deleted first, never the agent just written nor one whose write is still in flight.
import t from 'tap';
import { DiskIndex } from '../../worker/persistence/disk-index.js';

/** A clock that ticks once per reading, so each lastUsed tells when the agent was used. */
function ticking(): () => number {
  let time = 1000;
  return () => ++time;
}

/** One complete write of `bytes` for the agent; returns the agents to delete. */
function write(index: DiskIndex, agentId: string, bytes: number): string[] {
  index.writeStarted(agentId);
  return index.writeEnded(agentId, bytes);
}

const agents = (index: DiskIndex): string[] => index.entries().map((entry) => entry.agentId);

t.test('evicts least recently used agents in order until under the budget', async (t) => {
  const index = new DiskIndex(100, ticking());
  t.same(write(index, 'a', 30), []);
  t.same(write(index, 'b', 30), []);
  t.same(write(index, 'c', 30), []);
  t.equal(index.bytes, 90);
  index.touch('a');
  t.same(agents(index), ['b', 'c', 'a'], 'a load makes the agent the most recent');
  t.same(write(index, 'd', 30), ['b'], 'the least recently used goes first');
  t.equal(index.bytes, 90);
  t.same(write(index, 'e', 75), ['c', 'a', 'd'], 'as many as it takes, oldest first');
  t.equal(index.bytes, 75);
  t.same(index.entries(), [{ agentId: 'e', bytes: 75, lastUsed: 1006 }]);
  t.notOk(index.has('b'));
});

t.test("a rewrite replaces the agent's bytes and makes it the most recent", async (t) => {
  const index = new DiskIndex(100, ticking());
  write(index, 'a', 40);
  write(index, 'b', 40);
  t.same(write(index, 'a', 50), []);
  t.equal(index.bytes, 90, 'the old size is replaced, not added to');
  t.equal(index.size, 2);
  t.same(agents(index), ['b', 'a']);
  t.same(write(index, 'a', 70), ['b'], 'growing past the budget evicts the others, never the agent written');
  t.equal(index.bytes, 70);
});

t.test('the agent just written is kept even when it alone is over the budget', async (t) => {
  const index = new DiskIndex(100, ticking());
  write(index, 'a', 10);
  t.same(write(index, 'b', 104), ['a'], 'a file may exceed its data estimate by its header');
  t.equal(index.bytes, 104);
  t.same(agents(index), ['b']);
});

t.test('a state larger than the budget does not fit; budget 0 fits nothing useful', async (t) => {
  t.ok(new DiskIndex(100).fits(100));
  t.notOk(new DiskIndex(100).fits(101));
  t.notOk(new DiskIndex(0).fits(1));
});

t.test('concurrent writes of one agent: the last to land is counted, once', async (t) => {
  const index = new DiskIndex(100, ticking());
  index.writeStarted('a');
  index.writeStarted('a');
  t.ok(index.has('a'), 'an agent with a write on the way counts as present');
  t.equal(index.bytes, 0, 'nothing is counted before a write lands');
  t.same(index.writeEnded('a', 30), []);
  t.same(index.writeEnded('a', 45), []);
  t.equal(index.bytes, 45);
  t.equal(index.size, 1);
  index.writeStarted('a');
  t.same(index.writeEnded('a', undefined), [], 'a failed write leaves the previous file');
  t.equal(index.bytes, 45);
});

t.test('an agent with a write in flight is never evicted; it is skipped, not waited for', async (t) => {
  const index = new DiskIndex(100, ticking());
  write(index, 'a', 40);
  write(index, 'b', 40);
  index.writeStarted('a');
  index.touch('b');
  t.same(agents(index), ['a', 'b']);
  t.same(write(index, 'c', 40), ['b'], 'a is older but its file is about to be replaced');
  t.same(index.writeEnded('a', 40), [], 'its write lands: back under the budget');
  t.equal(index.bytes, 80);
});

t.test('files found at startup are ordered by mtime and trimmed to the budget', async (t) => {
  const index = new DiskIndex(100, ticking());
  const evicted = index.restore([
    { agentId: 'new', bytes: 50, lastUsed: 300 },
    { agentId: 'old', bytes: 50, lastUsed: 100 },
    { agentId: 'mid', bytes: 50, lastUsed: 200 },
  ]);
  t.same(evicted, ['old']);
  t.same(agents(index), ['mid', 'new']);
  t.equal(index.bytes, 100);
});

t.test('remove drops the agent and its bytes; entries are copies', async (t) => {
  const index = new DiskIndex(100, ticking());
  write(index, 'a', 40);
  const [entry] = index.entries();
  if (entry !== undefined) entry.bytes = 0;
  t.equal(index.bytes, 40);
  t.equal(index.entries()[0]?.bytes, 40);
  index.remove('a');
  index.remove('a');
  t.equal(index.bytes, 0);
  t.equal(index.size, 0);
});
