/**
 * The main thread's side of the inference thread: starts it, speaks the msgpack protocol to it, and
 * routes its replies to the request that is waiting for them. No request is ever left hanging: when
 * the thread dies (engine_dead, a crash, an exit, an undecodable frame) every pending request fails
 * with ERR_ENGINE_DEAD and later requests fail at once.
 */
import { Worker } from 'node:worker_threads';
import type { Logger } from 'pino';
import type { MetricObjectWithValues, MetricValue } from 'prom-client';
import { ErrorCode, SemanticError, type ErrorPayload } from '../shared/errors.js';
import { decodeInferenceMessage, encodeMessage } from '../shared/protocol/codec.js';
import type {
  AgentsOutcome,
  AgentsRequestMessage,
  CacheTierName,
  CachesClearedMessage,
  ConfigureMessage,
  DoneMessage,
  EngineStats,
  FrontToInference,
  GenerateInput,
  GenerateMessage,
  InferenceToFront,
  ModelSummary,
  ReasoningRequest,
  RuntimeLimits,
} from '../shared/protocol/messages.js';
import type { InferenceOptions } from '../shared/inference-options.js';
import { HeldGenerations } from './held-generations.js';
import { QueueFullLatch } from './queue-full.js';
import { DiskWrites } from './disk-writes.js';
import { recordThreadSpans, traceGeneration, type TracedGeneration } from './tracing/spans.js';
import type { Generation, GenerationEngine, GenerationHandlers } from './generation.js';

export type EngineState = 'starting' | 'ready' | 'dead' | 'closed';

export interface EngineClientOptions {
  inference: InferenceOptions;
  logger: Logger;
  /** The inference thread's module; tests point it at a fake thread. */
  threadUrl?: URL;
}

/** What an engine drain did: agents' turns it wrote, requests its deadline cut. */
export interface DrainReport {
  persisted: number;
  cut: number;
}

interface Pending {
  handlers: GenerationHandlers;
  /** Aborted requests stay until the engine's last word about them, so their id is not reused early. */
  aborted: boolean;
}

interface Waiter<T> {
  resolve(value: T): void;
  reject(error: Error): void;
}

/** A frame that asks for one reply: posted with a `#kind-N` id (no HTTP request id contains `#`). */
type Asked = Exclude<Extract<FrontToInference, { requestId: string }>, GenerateMessage | { type: 'abort' }>;
type Question = Asked extends infer M ? (M extends Asked ? Omit<M, 'requestId'> : never) : never;
type Reply = Extract<InferenceToFront, { requestId: string }>;

/** What a cache clear did: agents that left each tier, and those skipped because a request of theirs was in flight. */
export type ClearOutcome = Pick<CachesClearedMessage, 'cleared' | 'skipped'>;

const defaultThreadUrl = new URL('./inference/thread.js', import.meta.url);

export class EngineClient implements GenerationEngine {
  /** Resolves when the model is loaded and warmed up; rejects if the thread dies first. */
  readonly ready: Promise<ModelSummary>;
  private readonly worker: Worker;
  private readonly log: Logger;
  private readonly pending = new Map<string, Pending>();
  /** Questions (stats, token counts, Agents API, admin) waiting for their one reply. */
  private readonly pendingReplies = new Map<string, Waiter<Reply>>();
  /** Refuses at the front while the engine's queue is known to be full (queue-full.ts). */
  private readonly queueFull = new QueueFullLatch();
  /** Agents' cache file writes that failed, and whether the last one did (readiness: degraded). */
  readonly diskWrites: DiskWrites;
  private currentState: EngineState = 'starting';
  private summary: ModelSummary | undefined;
  private deathReason: ErrorPayload | undefined;
  private nextQuestionId = 0;
  /** Set while a model swap runs: new generations wait in it (held-generations.ts). */
  private held: HeldGenerations | undefined;
  /** The queue limit in force, which also bounds the generations held during a swap. */
  private maxQueued: number;
  private drainWaiter: { promise: Promise<DrainReport>; resolve(report: DrainReport): void } | undefined;
  private settleReady!: { resolve(model: ModelSummary): void; reject(error: Error): void };

  /** More ids the served model answers to, whichever it is (they outlive a swap). */
  readonly modelAliases: readonly string[];

  constructor(options: EngineClientOptions) {
    this.log = options.logger;
    this.modelAliases = options.inference.modelAliases ?? [];
    this.diskWrites = new DiskWrites(options.logger);
    this.maxQueued = options.inference.maxQueued;
    this.ready = new Promise<ModelSummary>((resolve, reject) => {
      this.settleReady = { resolve, reject };
    });
    // Callers that never await `ready` must not turn a failed start into an unhandled rejection.
    this.ready.catch(() => undefined);
    this.worker = new Worker(options.threadUrl ?? defaultThreadUrl, { workerData: options.inference });
    this.worker.on('message', (frame: Uint8Array) => this.onFrame(frame));
    this.worker.on('messageerror', (error) => this.die(`the inference thread sent an unreadable message: ${error.message}`));
    this.worker.on('error', (error) => this.die(`the inference thread crashed: ${error.message}`));
    this.worker.on('exit', (code) => this.die(`the inference thread exited with code ${code}`));
  }

  get state(): EngineState {
    return this.currentState;
  }

  /** The loaded model, once ready. */
  get model(): ModelSummary | undefined {
    return this.summary;
  }

  /** Why the engine died, if it did. */
  get deathError(): ErrorPayload | undefined {
    return this.deathReason;
  }

  /** Requests waiting for their last message (aborted ones included). */
  get pendingCount(): number {
    return this.pending.size;
  }

  /** Whether a model swap is running. */
  get swapping(): boolean {
    return this.held !== undefined;
  }

  generate(message: GenerateMessage, handlers: GenerationHandlers): Generation {
    const refusal = this.unavailable() ?? this.queueFull.refusal;
    if (refusal !== undefined) {
      // Asynchronous like every other outcome, so callers have one code path.
      queueMicrotask(() => handlers.onFailed(refusal));
      return { requestId: message.requestId, abort: () => undefined };
    }
    // Traced here, in the request's context: a generation held through a model swap is sent on from the swap's.
    const traced = traceGeneration(message, handlers, this.summary?.id ?? '');
    if (this.held !== undefined) return this.held.hold(traced.message, traced.handlers, this.summary?.id ?? '', this.maxQueued);
    return this.start(traced);
  }

  private start({ message, handlers, aborted }: TracedGeneration): Generation {
    const requestId = this.freeRequestId(message.requestId);
    this.pending.set(requestId, { handlers, aborted: false });
    this.post({ ...message, requestId });
    const abort = (): void => {
      aborted();
      this.abort(requestId);
    };
    return { requestId, abort };
  }

  /** Idempotent: the engine frees the sequence at once; no handler of the request runs afterwards. */
  abort(requestId: string): void {
    const entry = this.pending.get(requestId);
    if (entry === undefined || entry.aborted) return;
    entry.aborted = true;
    this.post({ type: 'abort', requestId });
  }

  stats(): Promise<EngineStats> {
    // Answered at once during a swap (the readiness probe must not hang on a model load).
    if (this.held !== undefined) return Promise.reject(new SemanticError(ErrorCode.NotReady, 'A model swap is in progress.', { retryAfter: 1 }));
    return this.ask({ type: 'stats_request' }, (reply) => (reply.type === 'stats' ? reply.stats : undefined));
  }

  /** The inference thread's metrics registry as prom-client JSON (worker/engine/metrics.ts); answered even during a swap. */
  async metricsJson(): Promise<MetricObjectWithValues<MetricValue<string>>[]> {
    const json = await this.ask({ type: 'metrics_request' }, (reply) => (reply.type === 'metrics' ? reply.json : undefined));
    return JSON.parse(json) as MetricObjectWithValues<MetricValue<string>>[];
  }

  /** Prompt tokens of `input`, rendered and tokenized as generation does; rejects with the engine's coded error. */
  countTokens(input: GenerateInput, reasoning?: ReasoningRequest): Promise<number> {
    return this.ask({ type: 'count_tokens', input, ...(reasoning === undefined ? {} : { reasoning }) }, (reply) => (reply.type === 'token_count' ? reply.inputTokens : undefined));
  }

  /** The Agents API (worker/engine/kv/agents.ts); rejects with the engine's coded error (404, 409). */
  agents(request: Omit<AgentsRequestMessage, 'type' | 'requestId'>): Promise<AgentsOutcome> {
    return this.ask({ type: 'agents_request', ...request }, (reply) => (reply.type === 'agents_result' ? reply.outcome : undefined));
  }

  /** The runtime limits in force after applying `update` (none: a read); rejects with a coded 400. */
  async limits(update: Omit<ConfigureMessage, 'type' | 'requestId'> = {}): Promise<RuntimeLimits> {
    const limits = await this.ask({ type: 'configure', ...update }, (reply) => (reply.type === 'limits' ? reply.limits : undefined));
    this.maxQueued = limits.maxQueued;
    this.queueFull.open();
    return limits;
  }

  /** Idle agents' caches leave these tiers; agents with a request in flight are skipped. */
  clearCaches(tiers: CacheTierName[]): Promise<ClearOutcome> {
    return this.ask({ type: 'clear_caches', tiers }, (reply) => (reply.type === 'caches_cleared' ? { cleared: reply.cleared, skipped: reply.skipped } : undefined));
  }

  /**
   * Swaps the model (worker/inference/swap.ts): generations that arrive meanwhile are held and sent on
   * once it is over. Resolves with the model now served; rejects with ERR_CONFLICT while another swap
   * runs, or ERR_MODEL_LOAD_FAILED when the old model had to be loaded back (it serves again).
   */
  async swapModel(path: string, id: string): Promise<ModelSummary> {
    if (this.held !== undefined) throw new SemanticError(ErrorCode.Conflict, 'A model swap is already running.');
    const held = new HeldGenerations();
    const asked = this.ask({ type: 'swap_model', path, id }, (reply) => (reply.type === 'model_swapped' ? reply : undefined));
    this.held = held;
    try {
      const { model, error } = await asked;
      this.summary = model;
      if (error !== undefined) throw SemanticError.fromPayload(error);
      return model;
    } finally {
      this.held = undefined;
      // Validated against the model served when they arrived: sent on only if it still is.
      held.release(this.summary?.id ?? '', (message, handlers) => this.generate(message, handlers));
    }
  }

  /**
   * Asks the engine to drain (see the protocol's `drain`); resolves once it did, or at once with
   * nothing done when the engine is not running. Idempotent.
   */
  drain(): Promise<DrainReport> {
    if (this.currentState !== 'ready') return Promise.resolve({ persisted: 0, cut: 0 });
    if (this.drainWaiter === undefined) {
      let resolve!: (report: DrainReport) => void;
      const promise = new Promise<DrainReport>((settle) => (resolve = settle));
      this.drainWaiter = { promise, resolve };
      this.post({ type: 'drain' });
    }
    return this.drainWaiter.promise;
  }

  /** The drain's deadline passed: running requests end now (ERR_DRAINING), then the drain completes. */
  cut(): void {
    if (this.currentState === 'ready') this.post({ type: 'cut' });
  }

  /** Stops the thread; pending requests fail with ERR_ENGINE_DEAD. */
  async close(): Promise<void> {
    if (this.currentState !== 'dead' && this.currentState !== 'closed') {
      this.failEverything({ code: ErrorCode.EngineDead, message: 'the engine was shut down' });
      this.currentState = 'closed';
    }
    await this.worker.terminate();
  }

  /** Why a request cannot be served now (loading, dead, closed), or undefined when it can. */
  unavailable(): ErrorPayload | undefined {
    switch (this.currentState) {
      case 'ready':
        return undefined;
      case 'starting':
        return { code: ErrorCode.NotReady, message: 'The model is still loading.', retryAfter: 1 };
      case 'dead':
        return { code: ErrorCode.EngineDead, message: `The engine is not running: ${this.deathReason?.message ?? 'unknown'}` };
      case 'closed':
        return { code: ErrorCode.EngineDead, message: 'The engine was shut down.' };
    }
  }

  /** Posts a question and resolves with `pick` of its reply; a `failed` reply rejects with its coded error. */
  private ask<T>(question: Question, pick: (reply: Reply) => T | undefined): Promise<T> {
    const refusal = this.unavailable();
    if (refusal !== undefined) return Promise.reject(SemanticError.fromPayload(refusal));
    const requestId = `#${question.type}-${++this.nextQuestionId}`;
    return new Promise<T>((resolve, reject) => {
      const settle = (reply: Reply): void => {
        const value = pick(reply);
        if (value === undefined) reject(new SemanticError(ErrorCode.Protocol, `the engine answered ${reply.type} to ${question.type}`));
        else resolve(value);
      };
      this.pendingReplies.set(requestId, { resolve: settle, reject });
      this.post({ ...question, requestId } as FrontToInference);
    });
  }

  private freeRequestId(requestId: string): string {
    if (!this.pending.has(requestId)) return requestId;
    for (let n = 2; ; n++) {
      const candidate = `${requestId}#${n}`;
      if (!this.pending.has(candidate)) return candidate;
    }
  }

  private post(message: FrontToInference): void {
    this.worker.postMessage(encodeMessage(message));
  }

  private onFrame(frame: Uint8Array): void {
    let message: InferenceToFront;
    try {
      message = decodeInferenceMessage(frame);
    } catch (error) {
      // A peer that breaks the protocol cannot be trusted to finish anyone's request.
      this.log.error({ err: error }, 'undecodable frame from the inference thread');
      return this.die(`the inference thread broke the protocol: ${(error as Error).message}`);
    }
    this.dispatch(message);
  }

  private dispatch(message: InferenceToFront): void {
    switch (message.type) {
      case 'ready':
        return this.onReady(message.model);
      case 'engine_dead':
        return this.die(message.error.message);
      case 'persisted':
        return this.diskWrites.written(message);
      case 'persist_failed':
        return this.diskWrites.writeFailed(message);
      case 'spans':
        return recordThreadSpans(message.spans);
      case 'drained':
        return this.drainWaiter?.resolve({ persisted: message.persisted, cut: message.cut });
      default:
        return this.onRequestMessage(message);
    }
  }

  private onReady(model: ModelSummary): void {
    if (this.currentState !== 'starting') return;
    this.summary = model;
    this.currentState = 'ready';
    this.settleReady.resolve(model);
  }

  private onRequestMessage(message: Extract<InferenceToFront, { requestId: string }>): void {
    const waiter = this.pendingReplies.get(message.requestId);
    if (waiter !== undefined) {
      this.pendingReplies.delete(message.requestId);
      return message.type === 'failed' ? waiter.reject(SemanticError.fromPayload(message.error)) : waiter.resolve(message);
    }
    const entry = this.pending.get(message.requestId);
    if (entry === undefined) {
      this.log.warn({ requestId: message.requestId, type: message.type }, 'message for no pending request');
      return;
    }
    if (message.type === 'done' || message.type === 'failed') {
      this.pending.delete(message.requestId);
      this.queueFull.ended(message, this.pending.size);
    }
    if (entry.aborted) return;
    this.deliver(entry.handlers, message);
  }

  private deliver(handlers: GenerationHandlers, message: Extract<InferenceToFront, { requestId: string }>): void {
    try {
      if (message.type === 'started') handlers.onStarted(message);
      else if (message.type === 'tokens') handlers.onTokens(message);
      else if (message.type === 'failed') handlers.onFailed(message.error);
      else if (message.type === 'done') this.deliverDone(handlers, message);
    } catch (error) {
      this.log.error({ err: error, requestId: message.requestId }, 'a generation handler threw');
    }
  }

  /** An abort we did not ask for (e.g. the engine shed the request) is a failure to the client. */
  private deliverDone(handlers: GenerationHandlers, message: DoneMessage): void {
    const { finishReason } = message;
    if (finishReason === 'abort') {
      return handlers.onFailed({ code: ErrorCode.Aborted, message: 'The engine aborted the request.' });
    }
    handlers.onDone({ ...message, finishReason });
  }

  private die(reason: string): void {
    if (this.currentState === 'dead' || this.currentState === 'closed') return;
    this.currentState = 'dead';
    this.deathReason = { code: ErrorCode.EngineDead, message: reason };
    this.log.error({ reason }, 'inference engine died');
    this.failEverything(this.deathReason);
    void this.worker.terminate();
  }

  private failEverything(error: ErrorPayload): void {
    const asError = SemanticError.fromPayload(error);
    this.settleReady.reject(asError);
    this.drainWaiter?.resolve({ persisted: 0, cut: 0 }); // nothing left to drain
    const requests = [...this.pending.values()];
    this.pending.clear();
    for (const entry of requests) {
      if (entry.aborted) continue;
      try {
        entry.handlers.onFailed(error);
      } catch (handlerError) {
        this.log.error({ err: handlerError }, 'a generation handler threw');
      }
    }
    const waiters = [...this.pendingReplies.values()];
    this.pendingReplies.clear();
    for (const waiter of waiters) waiter.reject(asError);
  }
}
