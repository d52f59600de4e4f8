/**
 * The inference thread's entry: loads the addon and the model, runs a warm-up step, then serves
 * protocol frames from the main thread. It is the only thread that touches llama.cpp.
 */
import { availableParallelism } from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import { basename } from 'node:path';
import { loadAddon, type Addon, type Context, type Model } from '../engine/addon.js';
import { Engine } from '../engine/engine.js';
import { DiskTier, modelFingerprint } from '../persistence/disk-tier.js';
import type { InferenceOptions } from './options.js';
import { detectToolFormat } from '../tools/format.js';
import { AUTO, autoContextSize, kvBytesPerToken, usableMemoryBytes } from '../../shared/budgets.js';
import { decodeFrontMessage, encodeMessage } from '../../shared/protocol/codec.js';
import type { AgentsRequestMessage, CountTokensMessage, FrontToInference, InferenceToFront } from '../../shared/protocol/messages.js';
import { ErrorCode, toErrorPayload } from '../../shared/errors.js';

/**
 * Cells per block of the KV pool: small enough that rounding wastes little of a small context (at most
 * 15 cells a sequence), large enough that block tables stay short; vLLM's default is 16 too.
 */
const KV_BLOCK_SIZE = 16;

const port = parentPort;
if (port === null) throw new Error('worker/inference/thread.js must run as a worker thread');
const options = workerData as InferenceOptions;

function post(message: InferenceToFront): void {
  port?.postMessage(encodeMessage(message));
}

/** One decode of a single token proves the backend works before the server reports ready. */
async function warmUp(model: Model, context: Context): Promise<void> {
  const info = model.info();
  const token = info.bos >= 0 ? info.bos : 0;
  await context.decode({ tokens: Int32Array.of(token), positions: Int32Array.of(0), seqIds: Int32Array.of(0), logits: Uint8Array.of(1) });
  context.seqRemove(0);
}

async function open(addon: Addon): Promise<{ model: Model; context: Context }> {
  const model = await addon.loadModel(options.modelPath, { gpuLayers: options.gpuLayers });
  const info = model.info();
  const nCtx = options.contextSize === AUTO ? autoContextSize(info.contextLength, kvBytesPerToken(info, options.kvType), usableMemoryBytes()) : options.contextSize;
  const context = await addon.createContext(model, {
    nCtx,
    nSeqMax: options.maxSequences,
    nBatch: options.batchTokens,
    typeK: options.kvType,
    typeV: options.kvType,
    flashAttention: options.flashAttention,
    kvUnified: options.kvUnified,
    // llama.cpp's own default is 4 threads whatever the machine: on 2 cores its spinning threads
    // then fight each other and a decode step takes seconds instead of tens of milliseconds.
    threads: options.threads > 0 ? options.threads : availableParallelism(),
  });
  await warmUp(model, context);
  return { model, context };
}

function countTokens(engine: Engine, message: CountTokensMessage): void {
  try {
    post({ type: 'token_count', requestId: message.requestId, inputTokens: engine.countTokens(message.input) });
  } catch (error) {
    post({ type: 'failed', requestId: message.requestId, error: toErrorPayload(error) });
  }
}

function agents(engine: Engine, message: AgentsRequestMessage): void {
  const { requestId } = message;
  engine.agents(message).then(
    (outcome) => post({ type: 'agents_result', requestId, outcome }),
    (error: unknown) => post({ type: 'failed', requestId, error: toErrorPayload(error) }),
  );
}

function dispatch(engine: Engine, message: FrontToInference): void {
  switch (message.type) {
    case 'generate':
      return engine.submit(message);
    case 'abort':
      return engine.abort(message.requestId);
    case 'stats_request':
      return post({ type: 'stats', requestId: message.requestId, stats: engine.stats() });
    case 'count_tokens':
      return countTokens(engine, message);
    case 'agents_request':
      return agents(engine, message);
    case 'drain':
      return void engine.drain().then((report) => post({ type: 'drained', ...report }));
    case 'cut':
      return engine.cut();
  }
}

async function main(): Promise<void> {
  const addon = loadAddon();
  const { model, context } = await open(addon);
  const contextInfo = context.info();
  const disk = new DiskTier(options.cacheDir, await modelFingerprint(options.modelPath), options.kvType, !options.flashAttention, options.diskBudgetBytes);
  await disk.index();
  const engine = new Engine(addon, model, context, {
    contextSize: contextInfo.nCtx,
    sequenceSize: contextInfo.nCtxSeq,
    maxSequences: options.maxSequences,
    batchTokens: options.batchTokens,
    blockSize: KV_BLOCK_SIZE,
    maxQueued: options.maxQueued,
    maxQueuedTokens: options.maxQueuedTokens === AUTO ? 4 * contextInfo.nCtx : options.maxQueuedTokens,
    defaultMaxTokens: 2048,
    ramBudgetBytes: options.ramBudgetBytes,
  }, post, disk);
  port?.on('message', (frame: Uint8Array) => {
    try {
      dispatch(engine, decodeFrontMessage(frame));
    } catch (error) {
      // A frame the front should never send: report it rather than die, the front logs it.
      post({ type: 'failed', requestId: 'protocol', error: toErrorPayload(error) });
    }
  });
  const info = model.info();
  post({
    type: 'ready',
    model: {
      id: options.modelId !== '' ? options.modelId : basename(options.modelPath, '.gguf'),
      path: options.modelPath,
      architecture: info.architecture,
      contextLength: info.contextLength,
      vocabSize: info.vocabSize,
      engineContext: contextInfo.nCtx,
      maxSequences: contextInfo.nSeqMax,
      toolFormat: detectToolFormat(info.chatTemplate),
    },
  });
}

main().catch((error: unknown) => {
  post({ type: 'engine_dead', error: { ...toErrorPayload(error), code: ErrorCode.EngineDead } });
});
