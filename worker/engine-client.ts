/**
 * The main thread's side of the inference thread: starts it, speaks the msgpack protocol to it, and
 * routes its replies to the request that is waiting for them. No request is ever left hanging: when
 * the thread dies (engine_dead, a crash, an exit, an undecodable frame) every pending request fails
 * with ERR_ENGINE_DEAD and later requests fail at once.
 */
import { Worker } from 'node:worker_threads';
import type { Logger } from 'pino';
import { ErrorCode, SemanticError, type ErrorPayload } from '../shared/errors.js';
import { decodeInferenceMessage, encodeMessage } from '../shared/protocol/codec.js';
import type {
  AgentsOutcome,
  AgentsRequestMessage,
  DoneMessage,
  EngineStats,
  FrontToInference,
  GenerateInput,
  GenerateMessage,
  InferenceToFront,
  ModelSummary,
  StartedMessage,
  TokensMessage,
} from '../shared/protocol/messages.js';
import type { InferenceOptions } from './inference/options.js';

/** A request's end as a client sees it: aborts are never reported as a finish reason. */
export type CompletedMessage = DoneMessage & { finishReason: 'stop' | 'length' };

/** Called on the main thread, in protocol order: started → tokens* → done, or failed at any point. */
export interface GenerationHandlers {
  onStarted(message: StartedMessage): void;
  onTokens(message: TokensMessage): void;
  onDone(message: CompletedMessage): void;
  onFailed(error: ErrorPayload): void;
}

export interface Generation {
  /** The protocol id: the caller's id, suffixed only if a request with that id is still in flight. */
  readonly requestId: string;
  /** Idempotent; no handler runs afterwards. */
  abort(): void;
}

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

const defaultThreadUrl = new URL('./inference/thread.js', import.meta.url);

export class EngineClient {
  /** Resolves when the model is loaded and warmed up; rejects if the thread dies first. */
  readonly ready: Promise<ModelSummary>;
  private readonly worker: Worker;
  private readonly log: Logger;
  private readonly pending = new Map<string, Pending>();
  private readonly pendingStats = new Map<string, Waiter<EngineStats>>();
  /** Keyed `#count-N`: no HTTP request id contains `#`, so no generation's id can collide. */
  private readonly pendingCounts = new Map<string, Waiter<number>>();
  /** Keyed `#agents-N`, like counts. */
  private readonly pendingAgents = new Map<string, Waiter<AgentsOutcome>>();
  private currentState: EngineState = 'starting';
  private summary: ModelSummary | undefined;
  private deathReason: ErrorPayload | undefined;
  private nextStatsId = 0;
  private nextCountId = 0;
  private nextAgentsId = 0;
  private drainWaiter: { promise: Promise<DrainReport>; resolve(report: DrainReport): void } | undefined;
  private settleReady!: { resolve(model: ModelSummary): void; reject(error: Error): void };

  constructor(options: EngineClientOptions) {
    this.log = options.logger;
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

  generate(message: GenerateMessage, handlers: GenerationHandlers): Generation {
    const refusal = this.unavailable();
    if (refusal !== undefined) {
      // Asynchronous like every other outcome, so callers have one code path.
      queueMicrotask(() => handlers.onFailed(refusal));
      return { requestId: message.requestId, abort: () => undefined };
    }
    const requestId = this.freeRequestId(message.requestId);
    this.pending.set(requestId, { handlers, aborted: false });
    this.post({ ...message, requestId });
    return { requestId, abort: () => this.abort(requestId) };
  }

  /** Idempotent: the engine frees the sequence at once; no handler of the request runs afterwards. */
  abort(requestId: string): void {
    const entry = this.pending.get(requestId);
    if (entry === undefined || entry.aborted) return;
    entry.aborted = true;
    this.post({ type: 'abort', requestId });
  }

  stats(): Promise<EngineStats> {
    const refusal = this.unavailable();
    if (refusal !== undefined) return Promise.reject(SemanticError.fromPayload(refusal));
    const requestId = `stats-${++this.nextStatsId}`;
    return new Promise((resolve, reject) => {
      this.pendingStats.set(requestId, { resolve, reject });
      this.post({ type: 'stats_request', requestId });
    });
  }

  /** Prompt tokens of `input`, rendered and tokenized as generation does; rejects with the engine's coded error. */
  countTokens(input: GenerateInput): Promise<number> {
    const refusal = this.unavailable();
    if (refusal !== undefined) return Promise.reject(SemanticError.fromPayload(refusal));
    const requestId = `#count-${++this.nextCountId}`;
    return new Promise((resolve, reject) => {
      this.pendingCounts.set(requestId, { resolve, reject });
      this.post({ type: 'count_tokens', requestId, input });
    });
  }

  /** The Agents API (worker/engine/kv/agents.ts); rejects with the engine's coded error (404, 409). */
  agents(request: Omit<AgentsRequestMessage, 'type' | 'requestId'>): Promise<AgentsOutcome> {
    const refusal = this.unavailable();
    if (refusal !== undefined) return Promise.reject(SemanticError.fromPayload(refusal));
    const requestId = `#agents-${++this.nextAgentsId}`;
    return new Promise((resolve, reject) => {
      this.pendingAgents.set(requestId, { resolve, reject });
      this.post({ type: 'agents_request', requestId, ...request });
    });
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
      case 'stats':
        return this.onStats(message.requestId, message.stats);
      case 'token_count':
        return this.onCount(message.requestId, message.inputTokens);
      case 'agents_result':
        return this.onAgents(message.requestId, message.outcome);
      case 'persisted':
        return this.log.info({ agentId: message.agentId, bytes: message.bytes }, 'agent cache persisted');
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

  private onStats(requestId: string, stats: EngineStats): void {
    const waiter = this.pendingStats.get(requestId);
    this.pendingStats.delete(requestId);
    waiter?.resolve(stats);
  }

  private onCount(requestId: string, count: number | ErrorPayload): void {
    const waiter = this.pendingCounts.get(requestId);
    this.pendingCounts.delete(requestId);
    if (typeof count === 'number') waiter?.resolve(count);
    else waiter?.reject(SemanticError.fromPayload(count));
  }

  private onAgents(requestId: string, outcome: AgentsOutcome | ErrorPayload): void {
    const waiter = this.pendingAgents.get(requestId);
    this.pendingAgents.delete(requestId);
    if ('kind' in outcome) waiter?.resolve(outcome);
    else waiter?.reject(SemanticError.fromPayload(outcome));
  }

  private onRequestMessage(message: Extract<InferenceToFront, { requestId: string }>): void {
    if (message.type === 'failed' && this.pendingCounts.has(message.requestId)) return this.onCount(message.requestId, message.error);
    if (message.type === 'failed' && this.pendingAgents.has(message.requestId)) return this.onAgents(message.requestId, message.error);
    const entry = this.pending.get(message.requestId);
    if (entry === undefined) {
      this.log.warn({ requestId: message.requestId, type: message.type }, 'message for no pending request');
      return;
    }
    const last = message.type === 'done' || message.type === 'failed';
    if (last) this.pending.delete(message.requestId);
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
    const waiters = [...this.pendingStats.values(), ...this.pendingCounts.values(), ...this.pendingAgents.values()];
    this.pendingStats.clear();
    this.pendingCounts.clear();
    this.pendingAgents.clear();
    for (const waiter of waiters) waiter.reject(asError);
  }
}
