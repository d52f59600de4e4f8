/**
 * The addon and llama.cpp alone, without the engine, the worker thread or HTTP: cold prefill of one
 * prompt and greedy decode steps at 1 and N streams, for several context variants created from the
 * same model and run back to back, alternating, several times (a shared 2-core machine drifts, so
 * only ratios within one run mean anything). Comparing its figures with the server's separates the
 * time llama.cpp spends from the time the engine spends around it.
 *
 *   npm run build && node dist/bench/engine-micro.js --variants '[{"nBatch":512},{"nBatch":2048}]'
 *   node dist/bench/engine-micro.js --variants '[{"threadpool":false},{}]' --prompt 850 --steps 32 --reps 3
 */
import { parseArgs } from 'node:util';
import { loadAddon, type Context, type ContextOptions, type Sampler } from '../worker/engine/addon.js';
import { ensureModel, type ModelShape } from '../shared/gguf/make-model.js';
import { median } from './stats.js';

const { values } = parseArgs({
  options: {
    shape: { type: 'string', default: 'qwen2.5-0.5b' },
    model: { type: 'string' },
    /** A JSON array of ContextOptions, each laid over the base below. */
    variants: { type: 'string', default: '[{}]' },
    prompt: { type: 'string', default: '850' },
    steps: { type: 'string', default: '32' },
    streams: { type: 'string', default: '4' },
    reps: { type: 'string', default: '3' },
    ctx: { type: 'string', default: '16384' },
    threads: { type: 'string', default: '2' },
    /** Cells of an idle agent's history left in the context while measuring (another sequence), as a hot cache. */
    resident: { type: 'string', default: '0' },
    /** Sampler options as JSON (default greedy). */
    sampling: { type: 'string', default: '{"temperature":0}' },
  },
});
const promptTokens = Number(values.prompt);
const steps = Number(values.steps);
const streams = Number(values.streams);
const resident = Number(values.resident);
const idleSeq = streams;
const addon = loadAddon();
const model = await addon.loadModel(values.model ?? (await ensureModel(values.shape as ModelShape)));
const vocab = model.info().vocabSize;
const base: ContextOptions = { nCtx: Number(values.ctx), nSeqMax: streams + 1, nBatch: 512, threads: Number(values.threads), kvUnified: true, flashAttention: false };
const variants = (JSON.parse(values.variants ?? '[{}]') as ContextOptions[]).map((v) => ({ ...base, ...v }));

/** Distinct pseudo-random prompts per sequence: the cost of a token does not depend on which it is. */
function promptOf(seq: number, length = promptTokens): Int32Array {
  let state = 12345 + seq * 7919;
  return Int32Array.from({ length }, () => (state = (state * 1103515245 + 12345) % 2 ** 31) % vocab);
}

/** One sequence's prompt in chunks of n_batch, logits on its last token, as the engine's planStep feeds it. */
async function prefill(context: Context, seq: number, sampler: Sampler, length = promptTokens): Promise<number> {
  const prompt = promptOf(seq, length);
  const nBatch = context.info().nBatch;
  let token = -1;
  for (let start = 0; start < prompt.length; start += nBatch) {
    const chunk = prompt.subarray(start, Math.min(prompt.length, start + nBatch));
    const logits = new Uint8Array(chunk.length);
    const last = start + chunk.length === prompt.length;
    if (last) logits[chunk.length - 1] = 1;
    const batch = { tokens: chunk, positions: Int32Array.from(chunk, (_, i) => start + i), seqIds: new Int32Array(chunk.length).fill(seq), logits };
    const sampled = await context.decode(batch, last ? [{ index: chunk.length - 1, sampler }] : []);
    if (last) token = sampled[0] ?? 0;
  }
  return token;
}

/** `count` greedy steps of the sequences [0, n), each fed its last token. */
async function decode(context: Context, next: number[], samplers: Sampler[]): Promise<void> {
  const n = next.length;
  for (let step = 0; step < steps; step++) {
    const batch = {
      tokens: Int32Array.from(next),
      positions: Int32Array.from(next, () => promptTokens + step),
      seqIds: Int32Array.from(next, (_, i) => i),
      logits: new Uint8Array(n).fill(1),
    };
    const sampled = await context.decode(
      batch,
      next.map((_, i) => ({ index: i, sampler: samplers[i] as Sampler })),
    );
    for (let i = 0; i < n; i++) next[i] = sampled[i] ?? 0;
  }
}

interface Figures {
  prefillTokS: number;
  decode1TokS: number;
  decodeNTokS: number;
}

/** An empty context but for the idle agent's `resident` cells (written first, so they sit at the start of the cells). */
async function reset(context: Context, sampler: Sampler): Promise<void> {
  context.clear();
  if (resident > 0) await prefill(context, idleSeq, sampler, resident);
}

async function once(context: Context): Promise<Figures> {
  const sampling = JSON.parse(values.sampling ?? '{}') as Record<string, number>;
  const samplers = Array.from({ length: streams + 1 }, () => new addon.Sampler(model, sampling));
  await reset(context, samplers[idleSeq] as Sampler);
  let t = performance.now();
  const first = await prefill(context, 0, samplers[0] as Sampler);
  const prefillMs = performance.now() - t;
  t = performance.now();
  await decode(context, [first], samplers.slice(0, 1));
  const decode1Ms = performance.now() - t;
  await reset(context, samplers[idleSeq] as Sampler);
  const next: number[] = [];
  for (let seq = 0; seq < streams; seq++) next.push(await prefill(context, seq, samplers[seq] as Sampler));
  t = performance.now();
  await decode(context, next, samplers.slice(0, streams));
  const decodeNMs = performance.now() - t;
  for (const s of samplers) s.dispose();
  return { prefillTokS: promptTokens / (prefillMs / 1000), decode1TokS: steps / (decode1Ms / 1000), decodeNTokS: (steps * streams) / (decodeNMs / 1000) };
}

const contexts: Context[] = [];
for (const options of variants) contexts.push(await addon.createContext(model, options));
for (const context of contexts) await once(context); // warm-up: first-touch of weights and KV pages
const results: Figures[][] = variants.map(() => []);
for (let rep = 0; rep < Number(values.reps); rep++) {
  for (const [i, context] of contexts.entries()) (results[i] as Figures[]).push(await once(context));
}
console.log(
  `prompt ${promptTokens} tokens, ${steps} decode steps, ${streams} streams, ${resident} idle cells resident, ${values.reps} reps (median; each rep runs every variant in turn)`,
);
for (const [i, options] of variants.entries()) {
  const r = results[i] as Figures[];
  const pick = (key: keyof Figures): string => `${median(r.map((x) => x[key])).toFixed(1)} [${r.map((x) => x[key].toFixed(1)).join(' ')}]`;
  console.log(`${JSON.stringify(options)}\n  prefill tok/s ${pick('prefillTokS')}\n  decode 1 tok/s ${pick('decode1TokS')}\n  decode ${streams} tok/s ${pick('decodeNTokS')}`);
}
for (const context of contexts) context.dispose();
model.dispose();
