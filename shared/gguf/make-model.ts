/**
 * Makes random-weight GGUF models of the real qwen2 architecture with the real Qwen2 tokenizer and
 * chat template (copied from llama.cpp's vocabulary-only GGUF), deterministic from a seed. No weights
 * can be downloaded here; these give every code path real shapes and real costs, with gibberish output.
 */
import { mkdir, stat } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { projectRoot, userCacheDir } from '../paths.js';
import { TensorType, ValueType, type GgufValue } from './format.js';
import { readGgufMetadata } from './reader.js';
import { writeGguf, type TensorSpec } from './writer.js';
import { seededRandom } from '../seeded-random.js';
import { reasoningChatTemplate } from './reasoning-template.js';
import { endsTurnsTensors, type EndsTurnsPlan } from './ends-turns.js';

export type ModelShape = 'tiny' | 'qwen2.5-0.5b';
export const modelShapes: readonly ModelShape[] = ['tiny', 'qwen2.5-0.5b'];

/** Bump when the bytes a seed produces change, so cached models are regenerated. */
const FORMAT_VERSION = 4;

interface Hyperparameters {
  embedding: number;
  layers: number;
  heads: number;
  kvHeads: number;
  feedForward: number;
  contextLength: number;
  /** Type of the 2-D weight matrices; norms and biases stay F32. */
  matrixType: TensorType;
  /** Own output matrix. Tied random embeddings make each token predict itself, so tiny models untie. */
  untiedOutput: boolean;
  /**
   * Standard deviation of token_embd. With a tied output a token's logit for itself grows with
   * embeddingStd² · embedding while the layers' contribution grows only with embeddingStd, so a tied
   * shape needs a small value (0.02, as in real initialisation) or greedy decoding repeats one token.
   */
  embeddingStd: number;
}

const shapes: Record<ModelShape, Hyperparameters> = {
  // Small enough to generate in about a second and decode fast on 2 cores; the real vocabulary keeps
  // tokenization, the output layer and the state sizes honest. F32 matrices: llama.cpp's CPU kernels
  // sum in different orders for different batch shapes, and with Q8_0 the activations are quantized
  // too, which turns those last-bit differences into flipped greedy choices (seen in tests comparing
  // a batched run with a solo one). Tests compare batched and cached output with cold single-sequence
  // output token for token, so the test model keeps every kernel in F32.
  tiny: { embedding: 64, layers: 2, heads: 4, kvHeads: 2, feedForward: 128, contextLength: 8192, matrixType: TensorType.F32, untiedOutput: true, embeddingStd: 0.5 },
  'qwen2.5-0.5b': {
    embedding: 896,
    layers: 24,
    heads: 14,
    kvHeads: 2,
    feedForward: 4864,
    contextLength: 32768,
    matrixType: TensorType.Q8_0,
    untiedOutput: false,
    embeddingStd: 0.02,
  },
};

export function defaultVocabPath(): string {
  return join(projectRoot(), 'deps', 'llama.cpp', 'models', 'ggml-vocab-qwen2.gguf');
}

/** Variants of a shape and seed; each has its own file, and the plain model's bytes never change with them. */
export interface ModelVariant {
  /** A chat template that reasons (reasoning-template.ts) instead of the vocabulary's own (Qwen2's). */
  reasoning?: boolean;
  /**
   * Answers that end by themselves: end-of-turn likely at every step (ends-turns.ts), and a trained
   * context of 32768 so that an agent's long first prompt fits with default settings.
   */
  endsTurns?: boolean;
}

export function defaultModelPath(shape: ModelShape, seed = 0, { reasoning = false, endsTurns = false }: ModelVariant = {}): string {
  const override = process.env.SEMANTIC_MODEL_CACHE;
  const dir = override !== undefined && override !== '' ? override : join(userCacheDir(), 'models');
  return join(dir, `semantic-${shape}${reasoning ? '-reasoning' : ''}${endsTurns ? '-ends-turns' : ''}-seed${seed}-v${FORMAT_VERSION}.gguf`);
}

/** Claude Code's first prompt is about 27,000 tokens; the tiny shape's own 8192 would need --context-size. */
const endsTurnsContextLength = 32768;

/** Values per generated chunk: whole Q8_0 blocks, small enough that no tensor is ever held whole. */
const CHUNK = 1 << 20;

/** Uniform values with the given standard deviation; each tensor gets its own stream of the seed. */
function* uniform(count: number, std: number, next: () => number): Generator<Float32Array> {
  const half = std * Math.sqrt(3);
  for (let done = 0; done < count; done += CHUNK) {
    const out = new Float32Array(Math.min(CHUNK, count - done));
    for (let i = 0; i < out.length; i++) out[i] = (next() * 2 - 1) * half;
    yield out;
  }
}

function tensorList(h: Hyperparameters, vocab: number, seed: number): TensorSpec[] {
  const headDim = h.embedding / h.heads;
  const kv = headDim * h.kvHeads;
  const ones = (n: number) => () => new Float32Array(n).fill(1);
  let stream = 0;
  const matrix = (name: string, shape: number[], std: number): TensorSpec => {
    const next = seededRandom(seed * 7919 + ++stream);
    return { name, shape, type: h.matrixType, values: () => uniform(shape[0]! * shape[1]!, std, next) };
  };
  const vector = (name: string, n: number, std: number): TensorSpec => {
    const next = seededRandom(seed * 7919 + ++stream);
    return { name, shape: [n], type: TensorType.F32, values: () => uniform(n, std, next) };
  };
  // Large output weights make the logits peaked, so greedy decoding has clear winners.
  const tensors: TensorSpec[] = [matrix('token_embd.weight', [h.embedding, vocab], h.embeddingStd)];
  if (h.untiedOutput) tensors.push(matrix('output.weight', [h.embedding, vocab], 0.5));
  tensors.push({ name: 'output_norm.weight', shape: [h.embedding], type: TensorType.F32, values: ones(h.embedding) });
  for (let i = 0; i < h.layers; i++) {
    const b = `blk.${i}`;
    const inStd = 1 / Math.sqrt(h.embedding);
    tensors.push(
      { name: `${b}.attn_norm.weight`, shape: [h.embedding], type: TensorType.F32, values: ones(h.embedding) },
      matrix(`${b}.attn_q.weight`, [h.embedding, h.embedding], inStd),
      matrix(`${b}.attn_k.weight`, [h.embedding, kv], inStd),
      matrix(`${b}.attn_v.weight`, [h.embedding, kv], inStd),
      vector(`${b}.attn_q.bias`, h.embedding, 0.02),
      vector(`${b}.attn_k.bias`, kv, 0.02),
      vector(`${b}.attn_v.bias`, kv, 0.02),
      matrix(`${b}.attn_output.weight`, [h.embedding, h.embedding], inStd),
      { name: `${b}.ffn_norm.weight`, shape: [h.embedding], type: TensorType.F32, values: ones(h.embedding) },
      matrix(`${b}.ffn_gate.weight`, [h.embedding, h.feedForward], inStd),
      matrix(`${b}.ffn_up.weight`, [h.embedding, h.feedForward], inStd),
      matrix(`${b}.ffn_down.weight`, [h.feedForward, h.embedding], 1 / Math.sqrt(h.feedForward)),
    );
  }
  return tensors;
}

/** llama_ftype of a model whose matrices are all of one type. */
const fileType: Record<TensorType, number> = { [TensorType.F32]: 0, [TensorType.F16]: 1, [TensorType.Q8_0]: 7 };

function architectureMetadata(shape: ModelShape, h: Hyperparameters, seed: number): [string, GgufValue][] {
  const u32 = (value: number): GgufValue => ({ type: ValueType.UINT32, value });
  const f32 = (value: number): GgufValue => ({ type: ValueType.FLOAT32, value });
  return [
    ['general.architecture', { type: ValueType.STRING, value: 'qwen2' }],
    ['general.name', { type: ValueType.STRING, value: `Semantic random-weight ${shape} test model (seed ${seed}): output is gibberish` }],
    ['general.file_type', u32(fileType[h.matrixType])],
    ['qwen2.context_length', u32(h.contextLength)],
    ['qwen2.embedding_length', u32(h.embedding)],
    ['qwen2.block_count', u32(h.layers)],
    ['qwen2.feed_forward_length', u32(h.feedForward)],
    ['qwen2.attention.head_count', u32(h.heads)],
    ['qwen2.attention.head_count_kv', u32(h.kvHeads)],
    ['qwen2.rope.freq_base', f32(1000000)],
    ['qwen2.attention.layer_norm_rms_epsilon', f32(1e-6)],
  ];
}

export interface MakeModelOptions extends ModelVariant {
  shape: ModelShape;
  seed: number;
  outPath: string;
  vocabPath?: string;
}

export async function makeModel(options: MakeModelOptions): Promise<void> {
  const h = options.endsTurns === true ? { ...shapes[options.shape], contextLength: endsTurnsContextLength } : shapes[options.shape];
  const vocabMetadata = await readGgufMetadata(options.vocabPath ?? defaultVocabPath());
  const tokens = vocabMetadata.get('tokenizer.ggml.tokens');
  if (tokens?.type !== ValueType.ARRAY) throw new Error('the vocabulary GGUF has no tokenizer.ggml.tokens');
  const metadata = new Map<string, GgufValue>(architectureMetadata(options.shape, h, options.seed));
  for (const [key, value] of vocabMetadata) if (key.startsWith('tokenizer.')) metadata.set(key, value);
  if (options.reasoning === true) metadata.set('tokenizer.chat_template', { type: ValueType.STRING, value: reasoningChatTemplate });
  const tensors = tensorList(h, tokens.value.length, options.seed);
  await writeGguf(options.outPath, metadata, options.endsTurns === true ? endsTurnsTensors(tensors, endsTurnsPlan(h, tokens.value)) : tensors);
}

function endsTurnsPlan(h: Hyperparameters, tokens: unknown[]): EndsTurnsPlan {
  const [endOfTurnToken, newlineToken] = [tokens.indexOf('<|im_end|>'), tokens.indexOf('Ċ')];
  if (endOfTurnToken < 0 || newlineToken < 0) throw new Error('the vocabulary has no <|im_end|> or newline token');
  return { embedding: h.embedding, endOfTurnToken, newlineToken };
}

/** The cached model of this shape, seed and variant, generated on first use (safe if processes race: rename is atomic). */
export async function ensureModel(shape: ModelShape, seed = 0, variant: ModelVariant = {}): Promise<string> {
  const path = defaultModelPath(shape, seed, variant);
  if (existsSync(path) && (await stat(path)).size > 0) return path;
  await mkdir(join(path, '..'), { recursive: true });
  await makeModel({ shape, seed, outPath: path, ...variant });
  return path;
}
