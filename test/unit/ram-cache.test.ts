// RamCache keeps states under its byte budget, least recently used out first.
import t from 'tap';
import { RamCache } from '../../worker/engine/kv/ram-cache.js';

const state = (bytes: number): Uint8Array => new Uint8Array(bytes);
const tokens = Int32Array.of(1, 2, 3);
const noLogits = new Float32Array(0);

t.test('evicts least recently used entries beyond the budget', async (t) => {
  const cache = new RamCache(100);
  cache.put('a', tokens, state(40), noLogits);
  cache.put('b', tokens, state(40), noLogits);
  t.equal(cache.bytes, 80);
  cache.put('c', tokens, state(40), noLogits);
  t.equal(cache.size, 2);
  t.equal(cache.bytes, 80);
  t.equal(cache.take('a'), undefined, 'a, the oldest, went first');
  t.equal(cache.take('b')?.own.byteLength, 40);
  t.equal(cache.bytes, 40, 'take removes the entry and its bytes');
});

t.test('replacing an agent keeps one entry; a state larger than the budget is not kept', async (t) => {
  const cache = new RamCache(100);
  cache.put('a', tokens, state(30), noLogits);
  cache.put('a', tokens, state(50), noLogits);
  t.equal(cache.size, 1);
  t.equal(cache.bytes, 50);
  cache.put('big', tokens, state(101), noLogits);
  t.equal(cache.take('big'), undefined);
  t.equal(cache.bytes, 50, 'and the others stay');
});

t.test('logits count towards the budget', async (t) => {
  const cache = new RamCache(100);
  cache.put('a', tokens, state(40), new Float32Array(10));
  t.equal(cache.bytes, 80);
  cache.put('b', tokens, state(30), noLogits);
  t.equal(cache.take('a'), undefined, '40 + 40 + 30 is over 100: a went');
  t.equal(cache.bytes, 30);
});
