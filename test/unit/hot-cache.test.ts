// HotCache hands out the least recently parked agent first; an entry put back counts as just used.
import t from 'tap';
import { HotCache, reusablePrefix } from '../../worker/engine/kv/hot-cache.js';

const tokens = Int32Array.of(1, 2);
const logits = new Float32Array(0);

t.test('least recently used first; a restored entry goes to the back, unchanged', async (t) => {
  const hot = new HotCache();
  const a = hot.put('a', 0, tokens, logits);
  hot.put('b', 1, tokens, logits);
  hot.put('c', 2, tokens, logits);
  t.equal(hot.take('a'), a);
  hot.restore(a);
  t.equal(hot.takeLeastRecent()?.agentId, 'b');
  hot.put('c', 3, tokens, logits);
  t.same(
    [...hot.entries()].map((e) => [e.agentId, e.seqId]),
    [
      ['a', 0],
      ['c', 3],
    ],
    'c parked again is the newest',
  );
  t.equal(hot.takeLeastRecent(), a, 'the same entry object, so a pending write still recognises its turn');
  t.equal(hot.cells, 2);
  t.equal(hot.takeLeastRecent()?.agentId, 'c');
  t.equal(hot.takeLeastRecent(), undefined);
});

t.test('a new prompt reuses the common prefix, all of it only when the cache holds exactly the prompt and the logits after it', async (t) => {
  const cached = { tokens: Int32Array.of(5, 6, 7), logits: Float32Array.of(0.5, 1.5) };
  t.same(reusablePrefix(cached, Int32Array.of(5, 6, 7, 8)), { tokens: 3 }, 'a longer prompt: prefill from its 4th token');
  t.same(reusablePrefix(cached, Int32Array.of(5, 6, 9)), { tokens: 2 }, 'divergence: the common prefix');
  t.same(reusablePrefix(cached, Int32Array.of(5, 6, 7)), { tokens: 3, logits: cached.logits }, 'the same prompt: no decode before its first token');
  t.same(reusablePrefix({ ...cached, logits: new Float32Array(0) }, Int32Array.of(5, 6, 7)), { tokens: 2 }, 'without logits the last token is recomputed');
  t.same(reusablePrefix(cached, Int32Array.of(5, 6)), { tokens: 1 }, 'a shorter prompt: the cached logits follow another token');
});
