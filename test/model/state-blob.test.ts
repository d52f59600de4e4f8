// Cutting and joining llama.cpp sequence states (worker/engine/kv/state-blob.ts) against the real
// addon and the tiny model: a state cut to a prefix, or put together from one state's prefix and
// another's suffix, imports into any sequence and continues exactly as the original cells do.
import t, { type Test } from 'tap';
import { loadAddon, type Context } from '../../worker/engine/addon.js';
import { buildState, cellsInRange, joinStates, parseState, statePrefix } from '../../worker/engine/kv/state-blob.js';
import { PieceExport } from '../../worker/engine/kv/write-behind.js';
import { tinyModelPath } from '../helpers/model.js';

const addon = loadAddon();
const model = await addon.loadModel(await tinyModelPath());
const tokens = model.tokenize(
  '<|im_start|>system\nYou are one worker of a swarm that plans trips across the Andes, by train and on foot.<|im_end|>\n<|im_start|>user\nWhere first?',
  { parseSpecial: true },
);

async function prefill(ctx: Context, seq: number, from = 0): Promise<void> {
  const n = tokens.length - from;
  await ctx.decode({ tokens: tokens.slice(from), positions: Int32Array.from({ length: n }, (_, i) => from + i), seqIds: new Int32Array(n).fill(seq), logits: new Uint8Array(n) });
}

/** The logits after feeding `tokens[at]` at position `at` to `seq`, whose cells hold [0, at). */
async function logitsAfter(ctx: Context, seq: number, at: number): Promise<Float32Array> {
  await ctx.decode({ tokens: Int32Array.of(tokens[at] as number), positions: Int32Array.of(at), seqIds: Int32Array.of(seq), logits: Uint8Array.of(1) });
  return ctx.logitsAt(0);
}

/**
 * Logits compared without tap's deep diff (it would render 150K floats). In a unified KV cache the
 * same cells at other slots of the buffer are summed in another order, so values may differ in the
 * last bits there; the greedy token must not.
 */
function compareLogits(t: Test, actual: Float32Array, expected: Float32Array, exact: boolean): void {
  let worst = 0;
  for (let i = 0; i < expected.length; i++) worst = Math.max(worst, Math.abs((actual[i] as number) - (expected[i] as number)));
  if (exact) t.equal(worst, 0, 'same logits, bit for bit');
  else t.ok(worst < 1e-3, `logits within float rounding (largest difference ${worst})`);
  t.equal(argmax(actual), argmax(expected), 'same greedy token');
}

function argmax(values: Float32Array): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if ((values[i] as number) > (values[best] as number)) best = i;
  return best;
}

async function newContext(kvUnified = true): Promise<Context> {
  return addon.createContext(model, { nCtx: 512, nSeqMax: 4, nBatch: 256, threads: 1, kvUnified });
}

t.test('a state parses to its cells, in positions 0..n-1', async (t) => {
  const ctx = await newContext();
  await prefill(ctx, 0);
  const state = parseState(await ctx.stateSeqGet(0));
  t.equal(state.positions.length, tokens.length);
  t.same(
    [...state.positions].sort((a, b) => a - b),
    Array.from({ length: tokens.length }, (_, i) => i),
  );
  t.equal(state.nLayer > 0, true);
  t.equal(state.vTrans, 1, 'V is transposed without flash attention');
  ctx.dispose();
});

for (const kvUnified of [true, false]) {
  t.test(`a prefix cut from a state continues like the original cells (kvUnified ${kvUnified})`, async (t) => {
    const ctx = await newContext(kvUnified);
    await prefill(ctx, 0);
    const keep = 17;
    const cut = statePrefix(await ctx.stateSeqGet(0), keep);
    if (cut === undefined) return t.fail('the state could not be cut');
    t.equal(parseState(cut).positions.length, keep);
    const whole = await ctx.stateSeqGet(0);
    t.ok(cut.byteLength < whole.byteLength, 'the cut state holds only its cells');
    t.equal(statePrefix(whole, tokens.length)?.byteLength, whole.byteLength, 'cut to every cell, the state is whole');
    await ctx.stateSeqSet(2, cut);
    t.equal(ctx.seqPosMin(2), 0);
    t.equal(ctx.seqPosMax(2), keep - 1);
    ctx.seqRemove(0, keep, -1);
    const expected = Float32Array.from(await logitsAfter(ctx, 0, keep));
    const actual = Float32Array.from(await logitsAfter(ctx, 2, keep));
    compareLogits(t, actual, expected, !kvUnified);
    ctx.dispose();
  });
}

t.test('one state built from a prefix of one and the suffix of another imports as the whole', async (t) => {
  const ctx = await newContext();
  await prefill(ctx, 0);
  const whole = parseState(await ctx.stateSeqGet(0));
  const split = 20;
  // The suffix's cells come from a second sequence that shares the prefix's cells, as agents do.
  ctx.seqCopy(0, 1, 0, split);
  await prefill(ctx, 1, split);
  const other = parseState(await ctx.stateSeqGet(1));
  const joined = buildState([
    { state: whole, cells: cellsInRange(whole, 0, split) },
    { state: other, cells: cellsInRange(other, split, tokens.length) },
  ]);
  t.equal(joined.byteLength, whole.bytes.byteLength, 'as many bytes as the whole state');
  await ctx.stateSeqSet(3, joined);
  t.equal(ctx.seqPosMax(3), tokens.length - 1);
  const last = tokens.length - 1;
  ctx.seqRemove(0, last, -1);
  ctx.seqRemove(3, last, -1);
  const expected = Float32Array.from(await logitsAfter(ctx, 0, last));
  compareLogits(t, Float32Array.from(await logitsAfter(ctx, 3, last)), expected, false);
  ctx.dispose();
});

t.test('a state exported in pieces through a scratch sequence and joined is the whole export, byte for byte', async (t) => {
  const ctx = await newContext();
  await prefill(ctx, 0);
  const whole = await ctx.stateSeqGet(0);
  const scratch = 3;
  const pieces = new PieceExport(ctx, scratch, 0, 0, tokens.length);
  let exports = 0;
  while (!pieces.done) {
    t.ok(await pieces.advance(7), 'a piece of at most 7 cells');
    exports++;
    t.equal(ctx.seqPosMax(scratch), -1, 'the scratch sequence is empty again after each piece');
  }
  t.equal(exports, Math.ceil(tokens.length / 7));
  t.same(
    pieces.states.map((piece) => parseState(piece).positions.length),
    Array.from({ length: exports }, (_, i) => Math.min(7, tokens.length - 7 * i)),
  );
  const joined = joinStates(...pieces.states);
  t.equal(joined.byteLength, whole.byteLength);
  t.ok(Buffer.from(joined).equals(Buffer.from(whole)), 'the same bytes as llama.cpp exports for the sequence');
  t.equal(ctx.seqPosMax(0), tokens.length - 1, "the agent's own cells are untouched");
  ctx.dispose();
});

t.test('a blob that is not a state is refused, not misread', async (t) => {
  t.equal(statePrefix(new Uint8Array(64), 4), undefined);
  const ctx = await newContext();
  await prefill(ctx, 0);
  const state = await ctx.stateSeqGet(0);
  t.equal(statePrefix(state.subarray(0, state.byteLength - 1), 4), undefined, 'a truncated state');
  ctx.dispose();
});
