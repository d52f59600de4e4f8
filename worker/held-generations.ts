/**
 * Generations that arrive on the front while a model swap runs. Each was validated against the model
 * served when it arrived; once the swap is over it is sent on if that model still serves (same id:
 * a new version under the same name), or answered 404 ERR_MODEL_NOT_FOUND, param `model`, if the swap
 * put another model in its place: a request never runs on a model it did not name, and none is dropped
 * or refused only because a swap ran. Bounded by the queue limit, as the engine's wait queue is:
 * beyond it, 429 ERR_QUEUE_FULL at once.
 */
import { ErrorCode, type ErrorPayload } from '../shared/errors.js';
import type { GenerateMessage } from '../shared/protocol/messages.js';
import type { Generation, GenerationHandlers } from './generation.js';

interface Held {
  message: GenerateMessage;
  handlers: GenerationHandlers;
  /** The model it was validated against. */
  modelId: string;
  aborted: boolean;
  /** Once sent on. */
  started: Generation | undefined;
}

/** Fails asynchronously, like every other outcome of `generate`. */
function refuse(message: GenerateMessage, handlers: GenerationHandlers, error: ErrorPayload): Generation {
  queueMicrotask(() => handlers.onFailed(error));
  return { requestId: message.requestId, abort: () => undefined };
}

export class HeldGenerations {
  private readonly waiting: Held[] = [];

  get size(): number {
    return this.waiting.length;
  }

  hold(message: GenerateMessage, handlers: GenerationHandlers, modelId: string, limit: number): Generation {
    if (this.waiting.length >= limit) {
      return refuse(message, handlers, { code: ErrorCode.QueueFull, message: 'too many requests are waiting for a model swap to end', retryAfter: 1 });
    }
    const held: Held = { message, handlers, modelId, aborted: false, started: undefined };
    this.waiting.push(held);
    return {
      requestId: message.requestId,
      abort: () => {
        held.aborted = true;
        held.started?.abort();
      },
    };
  }

  /** The swap is over and `modelId` serves: each request still wanted is started, or answered 404. */
  release(modelId: string, start: (message: GenerateMessage, handlers: GenerationHandlers) => Generation): void {
    for (const held of this.waiting.splice(0)) {
      if (held.aborted) continue;
      if (held.modelId === modelId) {
        held.started = start(held.message, held.handlers);
        continue;
      }
      const error = { code: ErrorCode.ModelNotFound, message: `The model ${held.modelId} was replaced by ${modelId} while this request waited.`, param: 'model' };
      try {
        held.handlers.onFailed(error);
      } catch {
        // a handler's own bug must not stop the others from being answered
      }
    }
  }
}
