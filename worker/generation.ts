/**
 * The seam between the HTTP front and the engine: what an API family may ask of the engine, and what a
 * generation tells it back. `EngineClient` implements it; the API families (worker/api/) and the
 * generations held during a model swap (held-generations.ts) see only this, so neither depends on how
 * the engine is reached.
 */
import type { ErrorPayload } from '../shared/errors.js';
import type { DoneMessage, GenerateInput, GenerateMessage, ModelSummary, ReasoningRequest, StartedMessage, TokensMessage } from '../shared/protocol/messages.js';

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

/** What every API family needs from the engine. */
export interface GenerationEngine {
  /** The loaded model, once ready. */
  readonly model: ModelSummary | undefined;
  /** More ids requests may name the model by (`modelAlias`), whichever model is loaded. */
  readonly modelAliases?: readonly string[];
  /** Why a request cannot be served now (loading, dead), or undefined when it can. */
  unavailable(): ErrorPayload | undefined;
  /** Every outcome, a refusal included, reaches `handlers` asynchronously. */
  generate(message: GenerateMessage, handlers: GenerationHandlers): Generation;
  /** Prompt tokens of `input`, rendered and tokenized as generation does (with `reasoning`'s `enable_thinking`); rejects with the engine's coded error. */
  countTokens(input: GenerateInput, reasoning?: ReasoningRequest): Promise<number>;
}
