/**
 * Checks the llama.cpp backends the addon finds on this machine and compares them in one run: the
 * same model decoded greedily with every layer on the CPU and with every layer offloaded to a GPU
 * backend (when one is present). It verifies on each backend that a sequence's exported state,
 * imported into a fresh context, continues with exactly the tokens of the original, and reports
 * prefill and decode speed.
 *
 *   npm run build && node dist/bench/backend-check.js --shape qwen2.5-0.5b
 */
import { availableParallelism } from 'node:os';
import { parseArgs } from 'node:util';
import { loadAddon, type Context, type Model, type Sampler } from '../worker/engine/addon.js';
import { ensureModel, type ModelShape } from '../shared/gguf/make-model.js';

const { values } = parseArgs({ options: { shape: { type: 'string', default: 'qwen2.5-0.5b' }, tokens: { type: 'string', default: '64' } } });
const count = Number(values.tokens);
const addon = loadAddon();
const modelPath = await ensureModel(values.shape as ModelShape);

function batchOf(tokens: Int32Array, start: number, seq: number, lastLogits: boolean) {
  const logits = new Uint8Array(tokens.length);
  logits[tokens.length - 1] = lastLogits ? 1 : 0;
  return { tokens, positions: Int32Array.from(tokens, (_, i) => start + i), seqIds: new Int32Array(tokens.length).fill(seq), logits };
}

async function decodeGreedy(context: Context, sampler: Sampler, seq: number, first: number, start: number): Promise<number[]> {
  const out: number[] = [];
  let next = first;
  for (let i = 0; i < count; i++) {
    out.push(next);
    [next] = (await context.decode(batchOf(Int32Array.of(next), start + i, seq, true), [{ index: 0, sampler }])) as unknown as [number];
  }
  return out;
}

async function continueFrom(context: Context, seq: number, prompt: Int32Array): Promise<{ tokens: number[]; ms: number }> {
  const sampler = new addon.Sampler(modelOf(context), { temperature: 0 });
  const [first] = await context.decode(batchOf(prompt.slice(-1), prompt.length - 1, seq, true), [{ index: 0, sampler }]);
  const start = performance.now();
  const tokens = await decodeGreedy(context, sampler, seq, first as number, prompt.length);
  sampler.dispose();
  return { tokens, ms: performance.now() - start };
}

const models = new WeakMap<Context, Model>();
const modelOf = (context: Context): Model => models.get(context) as Model;

async function newContext(model: Model): Promise<Context> {
  const context = await addon.createContext(model, { nCtx: 2048, nSeqMax: 2, nBatch: 512, threads: availableParallelism() });
  models.set(context, model);
  return context;
}

/**
 * `fresh`: the state imported into a new context, where its cells sit where the original's did — must
 * match exactly. `other sequence`: imported beside the original in the same context; its cells sit
 * elsewhere and attention spans the other sequence's cells too (masked), so kernels may sum in another
 * order: llama.cpp is not batch-invariant, and with quantized weights that can flip a greedy choice.
 */
async function run(model: Model, label: string): Promise<void> {
  const context = await newContext(model);
  const prompt = model.tokenize('<|im_start|>user\n' + 'Tell me about llamas and alpacas. '.repeat(12) + '<|im_end|>\n<|im_start|>assistant\n', { parseSpecial: true });
  const head = prompt.slice(0, -1);
  const t0 = performance.now();
  await context.decode(batchOf(head, 0, 0, false));
  const prefillMs = performance.now() - t0;
  const state = await context.stateSeqGet(0);
  const original = await continueFrom(context, 0, prompt);
  const fresh = await newContext(model);
  await fresh.stateSeqSet(0, state);
  const restored = await continueFrom(fresh, 0, prompt);
  await context.stateSeqSet(1, state);
  const beside = await continueFrom(context, 1, prompt);
  const same = (a: number[], b: number[]): boolean => JSON.stringify(a) === JSON.stringify(b);
  console.log(
    `${label}: prefill ${head.length} tokens ${(head.length / (prefillMs / 1000)).toFixed(0)} tok/s, ` +
      `decode ${(count / (original.ms / 1000)).toFixed(1)} tok/s, state ${(state.byteLength / 1e6).toFixed(1)} MB, ` +
      `imported into a fresh context continues identically: ${same(original.tokens, restored.tokens)}, ` +
      `beside the original: ${same(original.tokens, beside.tokens)}`,
  );
  if (!same(original.tokens, restored.tokens)) process.exitCode = 1;
  context.dispose();
  fresh.dispose();
}

console.log(
  'devices:',
  addon
    .devices()
    .map((d) => `${d.name} (${d.type}: ${d.description})`)
    .join(', '),
);
const cpu = await addon.loadModel(modelPath, { gpuLayers: 0 });
await run(cpu, 'cpu');
cpu.dispose();
if (addon.devices().some((d) => d.type === 'gpu')) {
  const gpu = await addon.loadModel(modelPath, { gpuLayers: -1 });
  await run(gpu, 'gpu (all layers)');
  gpu.dispose();
}
