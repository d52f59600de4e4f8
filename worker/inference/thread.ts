/**
 * The inference thread's entry: loads the addon and the model (runtime.ts), runs a warm-up step, then
 * serves protocol frames from the main thread, swapping the model when the admin API asks (swap.ts).
 * It is the only thread that touches llama.cpp.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { basename } from 'node:path';
import { loadAddon, type Addon } from '../engine/addon.js';
import { versionInfo } from '../../shared/version.js';
import type { Engine } from '../engine/engine.js';
import type { InferenceOptions } from '../../shared/inference-options.js';
import { loadRuntime, type LoadEnvironment } from './runtime.js';
import { ModelHost } from './swap.js';
import { decodeFrontMessage, encodeMessage } from '../../shared/protocol/codec.js';
import type { ConfigureMessage, FrontToInference, InferenceToFront } from '../../shared/protocol/messages.js';
import { ErrorCode, toErrorPayload } from '../../shared/errors.js';
import { EngineMetrics } from '../engine/metrics.js';

const port = parentPort;
if (port === null) throw new Error('worker/inference/thread.js must run as a worker thread');
const options = workerData as InferenceOptions;

function post(message: InferenceToFront): void {
  port?.postMessage(encodeMessage(message));
}

/** Runs a request that answers at once; a throw (a coded 400) is its `failed`. */
function answer(requestId: string, reply: () => InferenceToFront): void {
  try {
    post(reply());
  } catch (error) {
    post({ type: 'failed', requestId, error: toErrorPayload(error) });
  }
}

/** Runs a request answered later, at a step boundary; a rejection is its `failed`. */
function answerLater<T>(requestId: string, outcome: Promise<T>, reply: (value: T) => InferenceToFront): void {
  outcome.then(
    (value) => post(reply(value)),
    (error: unknown) => post({ type: 'failed', requestId, error: toErrorPayload(error) }),
  );
}

/** New limits are kept for the engines later swaps build, once the engine accepted them. */
function configure(engine: Engine, message: ConfigureMessage, environment: LoadEnvironment): InferenceToFront {
  const { requestId, batchTokens, maxQueued, maxQueuedTokens } = message;
  const limits = engine.admin.configure({ batchTokens, maxQueued, maxQueuedTokens });
  if (batchTokens !== undefined) environment.limits.batchTokens = batchTokens;
  if (maxQueued !== undefined) environment.limits.maxQueued = maxQueued;
  if (maxQueuedTokens !== undefined) environment.limits.maxQueuedTokens = maxQueuedTokens;
  return { type: 'limits', requestId, limits };
}

function serve(engine: Engine, message: FrontToInference, environment: LoadEnvironment): void {
  switch (message.type) {
    case 'generate':
      return engine.submit(message);
    case 'abort':
      return engine.abort(message.requestId);
    case 'stats_request':
      return post({ type: 'stats', requestId: message.requestId, stats: engine.admin.stats() });
    case 'count_tokens':
      return answer(message.requestId, () => ({ type: 'token_count', requestId: message.requestId, inputTokens: engine.countTokens(message.input, message.reasoning) }));
    case 'agents_request':
      return answerLater(message.requestId, engine.admin.agents(message), (outcome) => ({ type: 'agents_result', requestId: message.requestId, outcome }));
    case 'configure':
      return answer(message.requestId, () => configure(engine, message, environment));
    case 'clear_caches':
      return answerLater(message.requestId, engine.admin.clearCaches(message.tiers), (result) => ({ type: 'caches_cleared', requestId: message.requestId, ...result }));
    case 'drain':
      return void engine.drain().then((report) => post({ type: 'drained', ...report }));
    case 'cut':
      return engine.cut();
    case 'swap_model':
    case 'metrics_request':
      return; // the host runs swaps itself; main() answers metrics
  }
}

/** `cpu`, or the first GPU's name (CUDA0, Metal, ...) when layers are offloaded to one. */
function backendOf(addon: Addon, gpuLayers: number): string {
  const gpu = gpuLayers === 0 ? undefined : addon.devices().find((device) => device.type !== 'cpu');
  return gpu?.name ?? 'cpu';
}

async function main(): Promise<void> {
  const metrics = new EngineMetrics(options.metricsBuckets);
  const environment: LoadEnvironment = { addon: loadAddon(), options, post, limits: {}, metrics };
  const version = versionInfo();
  metrics.buildInfo(version.semantic, version.llamaCpp ?? 'unknown', backendOf(environment.addon, options.gpuLayers));
  const id = options.modelId !== '' ? options.modelId : basename(options.modelPath, '.gguf');
  const runtime = await loadRuntime(environment, { path: options.modelPath, id });
  const host = new ModelHost(runtime, environment, (engine, message) => serve(engine, message, environment));
  port?.on('message', (frame: Uint8Array) => {
    try {
      const message = decodeFrontMessage(frame);
      // Answered even while a model swap holds other frames: the registry outlives the engines.
      if (message.type === 'metrics_request')
        return answerLater(message.requestId, metrics.json(), (json) => ({ type: 'metrics', requestId: message.requestId, json: JSON.stringify(json) }));
      host.receive(message);
    } catch (error) {
      // A frame the front should never send: report it rather than die, the front logs it.
      post({ type: 'failed', requestId: 'protocol', error: toErrorPayload(error) });
    }
  });
  post({ type: 'ready', model: runtime.summary });
}

main().catch((error: unknown) => {
  post({ type: 'engine_dead', error: { ...toErrorPayload(error), code: ErrorCode.EngineDead } });
});
