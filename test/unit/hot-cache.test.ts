// HotCache hands out the least recently parked agent first; an entry put back counts as just used.
import t from 'tap';
import { HotCache } from '../../worker/engine/kv/hot-cache.js';

const tokens = Int32Array.of(1, 2);

t.test('least recently used first; a restored entry goes to the back, unchanged', async (t) => {
  const hot = new HotCache();
  const a = hot.put('a', 0, tokens);
  hot.put('b', 1, tokens);
  hot.put('c', 2, tokens);
  t.equal(hot.take('a'), a);
  hot.restore(a);
  t.equal(hot.takeLeastRecent()?.agentId, 'b');
  hot.put('c', 3, tokens);
  t.same([...hot.entries()].map((e) => [e.agentId, e.seqId]), [['a', 0], ['c', 3]], 'c parked again is the newest');
  t.equal(hot.takeLeastRecent(), a, 'the same entry object, so a pending write still recognises its turn');
  t.equal(hot.cells, 2);
  t.equal(hot.takeLeastRecent()?.agentId, 'c');
  t.equal(hot.takeLeastRecent(), undefined);
});
