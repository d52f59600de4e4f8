// DiskSegments: which segment a new file's first cells go to, which older file moves onto a new one,
// and that a segment goes (its file deleted) only once no file uses it and no write is planned onto it.
import t from 'tap';
import { DiskSegments } from '../../worker/persistence/disk-segments.js';
import { DiskIndex } from '../../worker/persistence/disk-index.js';

const opening = Array.from({ length: 70 }, (_, i) => i);
const tokens = (own: number[]): Int32Array => Int32Array.from([...opening, ...own]);

t.test('a second file opening alike makes a segment of whole blocks, the first moves onto it, later ones find it', async (t) => {
  const deleted: string[] = [];
  const segments = new DiskSegments(16, 64, (name) => deleted.push(name));
  t.equal(segments.plan('a', 's', tokens([900])), undefined, 'nobody to share with yet');
  segments.fileWritten('a', 's', tokens([900]));
  const plan = segments.plan('b', 's', tokens([901, 902]));
  t.equal(plan?.partner, 'a');
  t.equal(plan?.segment.tokens.length, 64, '70 common tokens: 4 whole blocks');
  if (plan === undefined) return;
  segments.fileWritten('b', 's', tokens([901, 902]), { name: plan.segment.name, bytes: 1000 });
  segments.settled(plan.segment);
  segments.fileWritten('a', 's', tokens([900]), { name: plan.segment.name, bytes: 1000 });
  segments.settled(plan.segment);
  t.equal(segments.bytes, 1000);
  const third = segments.plan('c', 's', tokens([903]));
  t.equal(third?.segment, plan.segment, 'the existing segment');
  t.equal(third?.partner, undefined);
  t.equal(segments.plan('d', 'other-scope', tokens([903])), undefined, 'another scope never shares it');
  if (third !== undefined) segments.settled(third.segment);
  segments.fileGone('a');
  segments.fileGone('b');
  t.same(deleted, [plan.segment.name], 'gone with its last user');
  t.equal(segments.count, 0);
  t.equal(segments.bytes, 0);
});

t.test('a planned segment is not deleted under a write that has not settled', async (t) => {
  const deleted: string[] = [];
  const segments = new DiskSegments(16, 64, (name) => deleted.push(name));
  segments.fileWritten('a', 's', tokens([1]));
  const plan = segments.plan('b', 's', tokens([2]));
  if (plan === undefined) return t.fail('no plan');
  segments.fileWritten('a', 's', tokens([1]), { name: plan.segment.name, bytes: 10 });
  segments.settled(plan.segment);
  segments.fileGone('a');
  t.same(deleted, [], "b's write is still planned onto it");
  segments.fileWritten('b', 's', tokens([2])); // written whole after all
  segments.settled(plan.segment);
  t.same(deleted, [plan.segment.name]);
});

t.test('a short common prefix makes no segment; files without a scope share nothing', async (t) => {
  const segments = new DiskSegments(16, 64);
  segments.fileWritten(
    'a',
    's',
    Int32Array.from({ length: 40 }, (_, i) => i),
  );
  t.equal(
    segments.plan(
      'b',
      's',
      Int32Array.from({ length: 50 }, (_, i) => i),
    ),
    undefined,
    '40 common tokens < 64',
  );
  segments.fileWritten('c', undefined, tokens([5]));
  t.equal(segments.plan('d', undefined, tokens([5])), undefined);
  t.equal(segments.plan('e', 's', tokens([5])), undefined, 'c is not indexed');
});

t.test('DiskIndex counts bytes outside the files against the budget and reports removals', async (t) => {
  let outside = 50;
  const removed: string[] = [];
  const index = new DiskIndex(
    100,
    () => 0,
    () => outside,
  );
  index.onRemoved = (agentId) => removed.push(agentId);
  index.writeStarted('a');
  t.same(index.writeEnded('a', 30), []);
  index.writeStarted('b');
  t.same(index.writeEnded('b', 30), ['a'], '30 + 30 + 50 outside > 100: the least recent goes');
  t.same(removed, ['a']);
  outside = 0;
  index.writeStarted('c');
  t.same(index.writeEnded('c', 60), []);
  t.same(index.resize('c', 80), ['b'], 'a rewrite that grows can evict too');
  t.equal(index.bytes, 80);
});
