// decode-isolation.ts with a fake context that fails any decode carrying a poisoned token: the exact
// calls made (roll-backs, lone probes, the retry) and the retried plan's renumbered batch.
import t from 'tap';
import type { Batch, Sampler } from '../../worker/engine/addon.js';
import { retryWithoutFailing } from '../../worker/engine/decode-isolation.js';
import { planStep, type SchedulableSequence } from '../../worker/engine/scheduler.js';

const POISON = 666;
const sampler = (name: string): Sampler => ({ name }) as unknown as Sampler;
type Fake = SchedulableSequence & { sampler: Sampler; name: string };

function sequence(name: string, seqId: number, phase: 'prefill' | 'generate', prompt: number[], pendingToken = 0): Fake {
  return { name, seqId, phase, prompt: Int32Array.from(prompt), prefilled: 0, pendingToken, nextPosition: prompt.length, sampler: sampler(name) };
}

function fakeContext(failAll = false) {
  const calls: string[] = [];
  return {
    calls,
    seqRemove(seq: number, p0 = 0, p1 = -1): boolean {
      calls.push(`remove ${seq} [${p0}, ${p1})`);
      return true;
    },
    decode(batch: Batch, samples: { index: number; sampler: Sampler }[] = []): Promise<Int32Array> {
      calls.push(`decode ${[...batch.tokens].join(',')} samples ${samples.map((s) => `${s.index}:${(s.sampler as unknown as { name: string }).name}`).join(',') || 'none'}`);
      if (failAll || batch.tokens.includes(POISON)) return Promise.reject(Object.assign(new Error('returned -3'), { code: 'ERR_DECODE_FATAL' }));
      return Promise.resolve(Int32Array.from(samples, (s) => 100 + s.index));
    },
  };
}

t.test('the failing sequence is found alone, everything rolled back, the rest decoded again with renumbered samples', async (t) => {
  const a = { ...sequence('a', 0, 'generate', [1, 2, 3], 7), nextPosition: 3 };
  const b = sequence('b', 1, 'prefill', [4, POISON, 5]);
  const c = { ...sequence('c', 2, 'generate', [8, 9], 6), nextPosition: 2 };
  const plan = planStep([a, b, c], 16) as NonNullable<ReturnType<typeof planStep<Fake>>>;
  t.same([...plan.batch.tokens], [7, 6, 4, POISON, 5], 'generating tokens first, then the prefill');
  const context = fakeContext();
  const retried = await retryWithoutFailing(context, plan);
  t.same(context.calls, [
    'remove 0 [3, -1)',
    'remove 2 [2, -1)',
    'remove 1 [0, -1)', // the failed step's cells, whatever llama.cpp kept
    'decode 7 samples none',
    'remove 0 [3, -1)', // each alone, in batch order, without sampling
    'decode 6 samples none',
    'remove 2 [2, -1)',
    'decode 4,666,5 samples none',
    'remove 1 [0, -1)',
    'decode 7,6 samples 0:a,1:c', // the step again, without b, sampled as it would have been
  ]);
  t.same(
    retried?.failed.map(({ sequence }) => sequence.name),
    ['b'],
  );
  t.same(
    retried?.plan.samples.map(({ index, sequence }) => [index, sequence.name]),
    [
      [0, 'a'],
      [1, 'c'],
    ],
  );
  t.same(retried?.plan.prefill, [], 'the failed prefill is out of the plan');
  t.equal(retried?.plan.sequenceCount, 2);
  t.same([...(retried?.sampled ?? [])], [100, 101]);
});

t.test("a failure every sequence repeats alone is the context's: undefined (the engine dies)", async (t) => {
  const plan = planStep([sequence('a', 0, 'generate', [1], 7), sequence('b', 1, 'generate', [2], 8)], 16) as NonNullable<ReturnType<typeof planStep<Fake>>>;
  t.equal(await retryWithoutFailing(fakeContext(true), plan), undefined);
});
