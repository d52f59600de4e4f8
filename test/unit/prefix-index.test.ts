// PrefixIndex: the deepest whole block of a prompt that some agent of the same scope holds, found by
// chained block hashes; other scopes are never found, replaced and removed agents leave nothing behind.
import t from 'tap';
import { PrefixIndex, type LongestPrefix } from '../../worker/engine/kv/prefix-index.js';

const range = (from: number, to: number): number[] => Array.from({ length: to - from }, (_, i) => from + i);
const plain = ({ tokens, agents }: LongestPrefix): { tokens: number; agents: string[] } => ({ tokens, agents });

t.test('finds the deepest whole block two sequences share, and every agent holding it', async (t) => {
  const index = new PrefixIndex(4);
  index.set('a', 'k1', range(0, 10)); // blocks [0,4) [4,8); the last 2 tokens are no whole block
  index.set('b', 'k1', [...range(0, 6), 99, 98, 97]); // shares only the first block
  t.same(plain(index.longest('k1', range(0, 12))), { tokens: 8, agents: ['a'] });
  t.same(plain(index.longest('k1', [...range(0, 5), 50, 51, 52])), { tokens: 4, agents: ['a', 'b'] }, 'both hold block one');
  t.same(plain(index.longest('k1', [7, 1, 2, 3])), { tokens: 0, agents: [] }, 'a different first token: no block matches');
  t.same(plain(index.longest('k1', range(0, 3))), { tokens: 0, agents: [] }, 'a prompt shorter than a block');
});

t.test('a block matches only after the same blocks: the hash is chained', async (t) => {
  const index = new PrefixIndex(2);
  index.set('a', 'k', [1, 2, 3, 4]);
  t.same(plain(index.longest('k', [9, 9, 3, 4])), { tokens: 0, agents: [] }, 'block [3,4] after another first block is another block');
  t.equal(index.chain('k', [1, 2, 3, 4]).length, 2);
  t.not(index.chain('k', [1, 2, 3, 4])[1], index.chain('k', [9, 9, 3, 4])[1]);
});

t.test('scopes never see each other; an agent without a scope is not indexed', async (t) => {
  const index = new PrefixIndex(4);
  index.set('a', 'key-1', range(0, 8));
  index.set('c', undefined, range(0, 8));
  t.same(plain(index.longest('key-2', range(0, 8))), { tokens: 0, agents: [] });
  t.same(plain(index.longest('key-1', range(0, 8))), { tokens: 8, agents: ['a'] });
  t.equal(index.has('c'), false);
  t.equal(index.agents, 1);
});

t.test('the usable filter stops the walk where no usable holder reaches', async (t) => {
  const index = new PrefixIndex(4);
  index.set('long', 's', range(0, 16));
  index.set('short', 's', range(0, 4));
  t.same(plain(index.longest('s', range(0, 16), (id) => id !== 'long')), { tokens: 4, agents: ['short'] });
  t.same(plain(index.longest('s', range(0, 16), () => false)), { tokens: 0, agents: [] });
});

t.test("set replaces an agent's tokens; remove leaves no holder behind", async (t) => {
  const index = new PrefixIndex(4);
  index.set('a', 's', range(0, 8));
  index.set('a', 's', range(100, 108));
  t.same(plain(index.longest('s', range(0, 8))), { tokens: 0, agents: [] }, 'the old turn is gone');
  t.same(plain(index.longest('s', range(100, 108))), { tokens: 8, agents: ['a'] });
  t.same(Array.from(index.tokensOf('a')), range(100, 108));
  index.remove('a');
  t.equal(index.has('a'), false);
  t.same(plain(index.longest('s', range(100, 108))), { tokens: 0, agents: [] });
  t.same(Array.from(index.tokensOf('a')), []);
  t.equal(index.agents, 0);
});

t.test('lookup cost follows the prompt, not the number of agents', async (t) => {
  const index = new PrefixIndex(16);
  for (let i = 0; i < 5000; i++) index.set(`agent-${i}`, 's', [...range(0, 64), i]);
  let visited = 0;
  const found = index.longest('s', range(0, 64), () => (visited++, true));
  t.equal(found.tokens, 64);
  t.equal(found.agents.length, 5000);
  t.ok(visited <= 4 + 5000, 'one usable check per block walked, then the holders of the deepest one');

  visited = 0;
  const few = index.longest('s', range(0, 64), () => (visited++, true), 8);
  t.match(few, { tokens: 64, agents: range(0, 8).map((i) => `agent-${i}`) });
  t.equal(few.holders.size, 5000, 'every holder is known, for membership checks');
  t.ok(visited <= 4 + 8, `a limit of 8 candidates: ${visited} usable checks, not one per holder`);
});
