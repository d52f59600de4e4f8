/**
 * The `--ends-turns` variant of a random-weight model: real weights (no fake logits) arranged so that
 * the end-of-turn token is likely at every step and a sampled answer ends by itself, as an instruct
 * model's does. Clients such as Claude Code treat an answer that stops at max_tokens as an error, so a
 * model that never ends a turn cannot show them succeeding.
 *
 * How: one residual dimension carries a constant. Every token embedding holds `embeddingValue` there,
 * and every layer's attn_output and ffn_down write nothing into it (their rows for it are zero), so
 * the residual stream keeps it to the end. The output matrix reads that dimension only for the
 * end-of-turn token, which gets a steady logit boost on top of its random one (test/process/ends-turns.test.ts),
 * while the other tokens' logits stay as random as before.
 */
import type { TensorSpec } from './writer.js';

export interface EndsTurnsPlan {
  /** Width of the residual stream; the constant lives in its last dimension. */
  embedding: number;
  /** The chat template's end-of-turn token (`<|im_end|>` in the Qwen2 vocabulary): an end-of-generation token. */
  endOfTurnToken: number;
  /**
   * The newline token (`Ċ`): the chat template's assistant header ends with it, so the answer's first
   * step reads it. It carries no constant, so an answer is never empty (the end-of-turn token gets its
   * boost only from the token the step reads: the layers never write into that dimension).
   */
  newlineToken: number;
}

/**
 * Tuned on the tiny shape (64 wide) with the real addon, sampling at temperature 1 behind short
 * prompts: an output weight of 4.5 ended 4 of 24 answers within 200 tokens; 9 ended nearly all at
 * once (before the newline carried no constant: empty answers); 7.5 ends them after 1 to 4 tokens;
 * 6 after 1 to about 25 (mean about 7, so P(end) ≈ 0.13 per step), and greedy
 * decoding ends after 12 to 31 tokens. Behind a long prompt answers run longer: after 13 to 368
 * tokens behind Claude Code's 27K-token one (docs/benchmarks.md, "Claude Code end to end").
 */
const embeddingValue = 4;
const outputWeight = 6;

function chunksOf(spec: TensorSpec): Iterable<Float32Array> {
  const values = spec.values();
  return values instanceof Float32Array ? [values] : values;
}

/** Sets element `column` of every row (rows of `rowLength` values) to what `valueOf(row)` says. */
function* setColumn(chunks: Iterable<Float32Array>, rowLength: number, column: number, valueOf: (row: number) => number): Generator<Float32Array> {
  let offset = 0;
  for (const chunk of chunks) {
    const first = (((column - offset) % rowLength) + rowLength) % rowLength;
    for (let i = first; i < chunk.length; i += rowLength) chunk[i] = valueOf(Math.floor((offset + i) / rowLength));
    offset += chunk.length;
    yield chunk;
  }
}

/** Zeroes row `row` (the values from row · rowLength on). */
function* zeroRow(chunks: Iterable<Float32Array>, rowLength: number, row: number): Generator<Float32Array> {
  let offset = 0;
  for (const chunk of chunks) {
    const start = Math.max(row * rowLength - offset, 0);
    const end = Math.min((row + 1) * rowLength - offset, chunk.length);
    if (start < end) chunk.fill(0, start, end);
    offset += chunk.length;
    yield chunk;
  }
}

/** The tensor as the variant has it; tensors the variant leaves alone come back as they are. */
function endsTurnsTensor(spec: TensorSpec, plan: EndsTurnsPlan): TensorSpec {
  const dimension = plan.embedding - 1;
  const rowLength = spec.shape[0]!;
  const rewrite = (transform: (chunks: Iterable<Float32Array>) => Iterable<Float32Array>): TensorSpec => ({ ...spec, values: () => transform(chunksOf(spec)) });
  if (spec.name === 'token_embd.weight') return rewrite((chunks) => setColumn(chunks, rowLength, dimension, (token) => (token === plan.newlineToken ? 0 : embeddingValue)));
  if (spec.name === 'output.weight') return rewrite((chunks) => setColumn(chunks, rowLength, dimension, (token) => (token === plan.endOfTurnToken ? outputWeight : 0)));
  if (/^blk\.\d+\.(attn_output|ffn_down)\.weight$/.test(spec.name)) return rewrite((chunks) => zeroRow(chunks, rowLength, dimension));
  return spec;
}

/** The model's tensors with end-of-turn made likely; needs an untied output matrix (the tiny shape). */
export function endsTurnsTensors(tensors: TensorSpec[], plan: EndsTurnsPlan): TensorSpec[] {
  if (!tensors.some((tensor) => tensor.name === 'output.weight')) throw new Error('--ends-turns needs a shape with its own output matrix (tiny)');
  return tensors.map((tensor) => endsTurnsTensor(tensor, plan));
}
