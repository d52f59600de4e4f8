/**
 * One loaded model and everything built on it: the llama.cpp model and context, the engine, and the
 * disk tier of that model's agents' cache files. The inference thread holds one at a time; a model
 * swap (swap.ts) retires one and loads the next with the same options.
 */
import { availableParallelism } from 'node:os';
import type { Addon, Context, Model } from '../engine/addon.js';
import { Engine } from '../engine/engine.js';
import type { LimitsUpdate } from '../engine/engine-admin.js';
import { DiskTier } from '../persistence/disk-tier.js';
import { modelFingerprint } from '../../shared/cache-files.js';
import type { InferenceOptions } from '../../shared/inference-options.js';
import { detectToolFormat } from '../tools/format.js';
import { AUTO, autoContextSize, kvBytesPerToken, usableMemoryBytes } from '../../shared/budgets.js';
import type { InferenceToFront, ModelSummary } from '../../shared/protocol/messages.js';
import { cacheDirOf } from '../../shared/model-cache-dir.js';
import { withDecodeFault } from '../test-faults.js';
import type { EngineMetrics } from '../engine/metrics.js';
import type { LiveSource } from '../engine/metrics-live.js';

/**
 * Cells per block of the KV pool: small enough that rounding wastes little of a small context (at most
 * 15 cells a sequence), large enough that block tables stay short; vLLM's default is 16 too.
 */
const KV_BLOCK_SIZE = 16;

/** auto: spill unless flash attention is on (its kernel skips masked cells), and only where a tier can take them. */
function spillsIdle(options: InferenceOptions): boolean {
  const somewhere = options.ramBudgetBytes > 0 || options.diskBudgetBytes > 0;
  return somewhere && (options.idleAgents === 'spill' || (options.idleAgents === 'auto' && !options.flashAttention));
}

/**
 * In a unified KV cache one sequence id beyond the requests' serves as scratch: an agent's cells past
 * a shared prefix are copied there to be exported alone (kv/tiers.ts). Split streams get none (an
 * extra id would be an extra stream), nor does a context already at llama.cpp's 256 sequences.
 */
function scratchSequence(options: InferenceOptions): number | undefined {
  return options.kvUnified && options.maxSequences < 256 ? options.maxSequences : undefined;
}

export interface Runtime {
  model: Model;
  context: Context;
  engine: Engine;
  disk: DiskTier;
  summary: ModelSummary;
}

/** Which model file to load, and the id clients name it by. */
export interface ModelChoice {
  path: string;
  id: string;
}

/** What every load shares: the thread's options, and what outlives a swap. */
export interface LoadEnvironment {
  addon: Addon;
  options: InferenceOptions;
  post: (message: InferenceToFront) => void;
  /** Limits an operator changed through the admin API: a swapped-in engine keeps them. */
  limits: LimitsUpdate;
  /** The thread's metrics registry: it outlives every engine a swap builds. */
  metrics: EngineMetrics;
  /** The fingerprint of the model the process started with (set by the first load): its cache files live at the top of the cache dir (cacheDirOf). */
  startFingerprint?: string;
}

/** One decode of a single token proves the backend works before the model is reported ready. */
async function warmUp(model: Model, context: Context): Promise<void> {
  const info = model.info();
  const token = info.bos >= 0 ? info.bos : 0;
  await context.decode({ tokens: Int32Array.of(token), positions: Int32Array.of(0), seqIds: Int32Array.of(0), logits: Uint8Array.of(1) });
  context.seqRemove(0);
}

async function openContext(addon: Addon, model: Model, options: InferenceOptions): Promise<Context> {
  const info = model.info();
  const nCtx = options.contextSize === AUTO ? autoContextSize(info.contextLength, kvBytesPerToken(info, options.kvType), usableMemoryBytes()) : options.contextSize;
  return addon.createContext(model, {
    nCtx,
    nSeqMax: options.maxSequences + (scratchSequence(options) === undefined ? 0 : 1),
    nBatch: options.batchTokens,
    typeK: options.kvType,
    typeV: options.kvType,
    flashAttention: options.flashAttention,
    kvUnified: options.kvUnified,
    // llama.cpp's own default is 4 threads whatever the machine: on 2 cores its spinning threads
    // then fight each other and a decode step takes seconds instead of tens of milliseconds.
    threads: options.threads > 0 ? options.threads : availableParallelism(),
  });
}

/** Model, context and warm-up; what was created is freed again if a later part fails. */
async function open(addon: Addon, path: string, options: InferenceOptions): Promise<{ model: Model; context: Context }> {
  const model = await addon.loadModel(path, { gpuLayers: options.gpuLayers });
  let context: Context | undefined;
  try {
    context = withDecodeFault(await openContext(addon, model, options));
    await warmUp(model, context);
    return { model, context };
  } catch (error) {
    context?.dispose();
    model.dispose();
    throw error;
  }
}

function engineOf(environment: LoadEnvironment, model: Model, context: Context, disk: DiskTier): Engine {
  const { addon, options, post, limits, metrics } = environment;
  const contextInfo = context.info();
  const engine = new Engine(
    addon,
    model,
    context,
    {
      contextSize: contextInfo.nCtx,
      sequenceSize: contextInfo.nCtxSeq,
      maxSequences: options.maxSequences,
      batchTokens: Math.min(options.batchTokens, contextInfo.nBatch),
      maxBatchTokens: contextInfo.nBatch,
      blockSize: KV_BLOCK_SIZE,
      maxQueued: options.maxQueued,
      maxQueuedTokens: options.maxQueuedTokens === AUTO ? 4 * contextInfo.nCtx : options.maxQueuedTokens,
      maxQueuedPerAgent: options.maxQueuedPerAgent,
      defaultMaxTokens: 2048,
      ramBudgetBytes: options.ramBudgetBytes,
      scratchSeq: scratchSequence(options),
      spillIdleOnStart: spillsIdle(options),
    },
    post,
    disk,
    metrics,
  );
  // Limits set at runtime carry over, the batch budget clamped to this context's: an operator's
  // earlier PATCH must never make a valid model fail to load.
  const carried = limits.batchTokens === undefined ? limits : { ...limits, batchTokens: Math.min(limits.batchTokens, contextInfo.nBatch) };
  engine.admin.configure(carried);
  return engine;
}

function summaryOf(choice: ModelChoice, model: Model, context: Context, options: InferenceOptions, reasoning: ModelSummary['reasoning']): ModelSummary {
  const info = model.info();
  const contextInfo = context.info();
  return {
    id: choice.id,
    path: choice.path,
    architecture: info.architecture,
    contextLength: info.contextLength,
    vocabSize: info.vocabSize,
    engineContext: contextInfo.nCtx,
    maxSequences: options.maxSequences,
    toolFormat: detectToolFormat(info.chatTemplate),
    reasoning,
  };
}

/**
 * A bounded label for a failed cache file write: the errno code (kept in the message when the
 * error crossed from the file thread without it), the file thread's exit, or unknown.
 */
export function writeFailureReason(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && /^[A-Z][A-Z0-9_]{1,40}$/.test(code)) return code;
  const message = error instanceof Error ? error.message : String(error);
  if (message.startsWith('worker exited')) return 'ERR_WRITER_EXITED';
  return /^(E[A-Z0-9]{1,20}):/.exec(message)?.[1] ?? 'unknown';
}

function observeDisk(disk: DiskTier, metrics: EngineMetrics): void {
  disk.onWriteTimed = (startedMs) => metrics.persisted(startedMs);
  disk.onQuarantined = () => metrics.quarantine();
  disk.onEvicted = (files) => metrics.evicted('disk', 'none', files);
}

/** Read when scraped: the tier's state then, not a copy taken at load. */
function liveDisk(disk: DiskTier): LiveSource['disk'] {
  return {
    get bytes() {
      return disk.bytes;
    },
    get files() {
      return disk.size;
    },
    get budgetBytes() {
      return disk.budgetBytes;
    },
    writer: () => disk.writerStats(),
  };
}

/** The gauges of current state read this engine, its disk tier and its model from now on. */
function attachMetrics(environment: LoadEnvironment, engine: Engine, disk: DiskTier, loaded: { model: Model; id: string; nCtx: number }): void {
  const { kvType } = environment.options;
  environment.metrics.attach({
    stats: () => engine.admin.stats(),
    maxQueued: () => engine.admin.limits().maxQueued,
    bytesPerCell: kvBytesPerToken(loaded.model.info(), kvType),
    disk: disk.budgetBytes === 0 ? undefined : liveDisk(disk),
    model: { model: loaded.id, kvType, context: loaded.nCtx },
  });
}

/** Loads the model, its context and its disk tier, warms up, and builds the engine over them. */
export async function loadRuntime(environment: LoadEnvironment, choice: ModelChoice): Promise<Runtime> {
  const { addon, options } = environment;
  const { model, context } = await open(addon, choice.path, options);
  let disk: DiskTier | undefined;
  try {
    const fingerprint = await modelFingerprint(choice.path);
    environment.startFingerprint ??= fingerprint;
    const dir = cacheDirOf(options.cacheDir, fingerprint, environment.startFingerprint);
    disk = new DiskTier(dir, fingerprint, options.kvType, !options.flashAttention, options.diskBudgetBytes);
    disk.onWriteFailed = (agentId, error) =>
      environment.post({ type: 'persist_failed', agentId, reason: writeFailureReason(error), message: error instanceof Error ? error.message : String(error) });
    observeDisk(disk, environment.metrics);
    await disk.index();
    // Inside the try: whatever fails, the model, context and file thread are freed before a rollback loads the old model.
    const engine = engineOf(environment, model, context, disk);
    attachMetrics(environment, engine, disk, { model, id: choice.id, nCtx: context.info().nCtx });
    return { model, context, disk, engine, summary: summaryOf(choice, model, context, options, engine.reasoning) };
  } catch (error) {
    await disk?.close();
    context.dispose();
    model.dispose();
    throw error;
  }
}

/**
 * Lets the runtime's submitted requests finish, writes its idle agents' unwritten turns and waits for
 * every file write, then frees the context and the model. Resolves with the turns written.
 */
export async function retireRuntime(runtime: Runtime): Promise<number> {
  const persisted = await runtime.engine.retire();
  await runtime.disk.close();
  runtime.context.dispose();
  runtime.model.dispose();
  return persisted;
}
