// RamCache keeps states under its byte budget, least recently used out first.
import t from 'tap';
import { RamCache } from '../../worker/engine/kv/ram-cache.js';

const state = (bytes: number): Uint8Array => new Uint8Array(bytes);
const tokens = Int32Array.of(1, 2, 3);

t.test('evicts least recently used entries beyond the budget', async (t) => {
  const cache = new RamCache(100);
  cache.put('a', tokens, state(40));
  cache.put('b', tokens, state(40));
  t.equal(cache.bytes, 80);
  cache.put('c', tokens, state(40));
  t.equal(cache.size, 2);
  t.equal(cache.bytes, 80);
  t.equal(cache.take('a'), undefined, 'a, the oldest, went first');
  t.equal(cache.take('b')?.state.byteLength, 40);
  t.equal(cache.bytes, 40, 'take removes the entry and its bytes');
});

t.test('replacing an agent keeps one entry; a state larger than the budget is not kept', async (t) => {
  const cache = new RamCache(100);
  cache.put('a', tokens, state(30));
  cache.put('a', tokens, state(50));
  t.equal(cache.size, 1);
  t.equal(cache.bytes, 50);
  cache.put('big', tokens, state(101));
  t.equal(cache.take('big'), undefined);
  t.equal(cache.bytes, 50, 'and the others stay');
});
