// planStep puts every generating sequence's next token first, then prefill chunks under the budget.
import t from 'tap';
import { planStep, type SchedulableSequence } from '../../worker/engine/scheduler.js';

function seq(seqId: number, phase: SchedulableSequence['phase'], promptLength: number, prefilled: number, generated = 0): SchedulableSequence {
  const prompt = Int32Array.from({ length: promptLength }, (_, i) => 1000 * (seqId + 1) + i);
  const nextPosition = phase === 'prefill' ? prefilled : promptLength + generated - 1;
  return { seqId, phase, prompt, prefilled, pendingToken: 7 + seqId, nextPosition };
}

t.test('nothing to do gives no plan', async (t) => {
  t.equal(planStep([seq(0, 'finished', 4, 4)], 16), null);
});

t.test('generating sequences come first, one token each, with logits', async (t) => {
  const plan = planStep([seq(0, 'prefill', 5, 0), seq(1, 'generate', 3, 3, 2), seq(2, 'generate', 2, 2, 1)], 16);
  t.ok(plan);
  t.same([...plan!.batch.tokens], [8, 9, 1000, 1001, 1002, 1003, 1004]);
  t.same([...plan!.batch.positions], [4, 2, 0, 1, 2, 3, 4]);
  t.same([...plan!.batch.seqIds], [1, 2, 0, 0, 0, 0, 0]);
  t.same([...plan!.batch.logits], [1, 1, 0, 0, 0, 0, 1]);
  t.same(
    plan!.samples.map((s) => [s.index, s.sequence.seqId]),
    [
      [0, 1],
      [1, 2],
      [6, 0],
    ],
  );
  t.same(
    plan!.prefill.map((p) => [p.sequence.seqId, p.tokens]),
    [[0, 5]],
  );
  t.equal(plan!.sequenceCount, 3);
});

t.test('a long prompt is chunked by the budget and gets no logits until its last chunk', async (t) => {
  const long = seq(0, 'prefill', 10, 0);
  const plan = planStep([seq(1, 'generate', 2, 2, 1), long], 4);
  t.same([...plan!.batch.tokens], [8, 1000, 1001, 1002]);
  t.same([...plan!.batch.logits], [1, 0, 0, 0]);
  t.same(
    plan!.prefill.map((p) => p.tokens),
    [3],
  );
  const last = planStep([seq(0, 'prefill', 10, 8)], 4);
  t.same([...last!.batch.positions], [8, 9]);
  t.same([...last!.batch.logits], [0, 1]);
  t.same(
    last!.samples.map((s) => s.index),
    [1],
  );
});

t.test('a second prompt only gets what the first left of the budget', async (t) => {
  const plan = planStep([seq(0, 'prefill', 3, 0), seq(1, 'prefill', 6, 0)], 5);
  t.same(
    plan!.prefill.map((p) => [p.sequence.seqId, p.tokens]),
    [
      [0, 3],
      [1, 2],
    ],
  );
  t.same([...plan!.batch.logits], [0, 0, 1, 0, 0]);
});
