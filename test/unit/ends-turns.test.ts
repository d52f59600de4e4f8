// The --ends-turns rewrite of a model's tensors, on small tensors split into chunks across rows: the
// constant dimension in every token embedding (none for the newline), zero rows for it in attn_output
// and ffn_down, the output matrix reading it for the end-of-turn token only, the rest untouched.
import t from 'tap';
import { endsTurnsTensors } from '../../shared/gguf/ends-turns.js';
import { TensorType } from '../../shared/gguf/format.js';
import type { TensorSpec } from '../../shared/gguf/writer.js';

const embedding = 4;
const plan = { embedding, endOfTurnToken: 2, newlineToken: 1 };
/** A tensor of 1, 2, 3, … in chunks of 3 values, so rows straddle chunks. */
const tensor = (name: string, shape: [number, number]): TensorSpec => {
  const values = Float32Array.from({ length: shape[0] * shape[1] }, (_, i) => i + 1);
  return { name, shape, type: TensorType.F32, values: () => [0, 3, 6, 9, 12, 15, 18].filter((start) => start < values.length).map((start) => values.slice(start, start + 3)) };
};
const valuesOf = (spec: TensorSpec | undefined): number[] => {
  const produced = spec!.values();
  return (produced instanceof Float32Array ? [produced] : [...produced]).flatMap((chunk) => [...chunk]);
};
const rewritten = endsTurnsTensors(
  [
    tensor('token_embd.weight', [embedding, 3]),
    tensor('output.weight', [embedding, 3]),
    tensor('blk.0.attn_output.weight', [embedding, embedding]),
    tensor('blk.0.ffn_down.weight', [2, embedding]),
    tensor('blk.0.attn_q.weight', [embedding, embedding]),
  ],
  plan,
);
const byName = (name: string) => valuesOf(rewritten.find((spec) => spec.name === name));

t.test('every token embedding carries the constant in the last dimension, except the newline', async (t) => {
  t.same(byName('token_embd.weight'), [1, 2, 3, 4, 5, 6, 7, 0, 9, 10, 11, 4]);
});

t.test('the output matrix reads that dimension for the end-of-turn token only', async (t) => {
  t.same(byName('output.weight'), [1, 2, 3, 0, 5, 6, 7, 0, 9, 10, 11, 6]);
});

t.test('attn_output and ffn_down write nothing into it; other tensors are untouched', async (t) => {
  t.same(byName('blk.0.attn_output.weight'), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 0, 0, 0, 0]);
  t.same(byName('blk.0.ffn_down.weight'), [1, 2, 3, 4, 5, 6, 0, 0]);
  t.same(
    byName('blk.0.attn_q.weight'),
    Array.from({ length: 16 }, (_, i) => i + 1),
  );
});

t.test('a tied output (no output.weight) is refused', async (t) => {
  t.throws(() => endsTurnsTensors([tensor('token_embd.weight', [embedding, 3])], plan), /own output matrix/);
});
