/**
 * The front answers a full engine's 429 itself. Once the engine refuses a request because its queue
 * is full, every request after it would be refused too until one in flight ends: each of those
 * would still be parsed, posted across the MessagePort, rendered and tokenized by the inference
 * thread only to be refused there. Under a flood of clients that retry at once (load generators,
 * naive scripts) that churn took a core from the decode loop: 128 such clients on 16 sequences got
 * 7,500 refusals in 10 s and half of llama-server's completed requests. The latch refuses at the
 * front, with the engine's own error, until the engine's next answer that ends a request. A
 * refusal for `--max-queued-tokens` latches too, so a smaller request that would have fit the
 * queue's tokens is refused until then as well: at most one request's time, answered with
 * Retry-After like the rest.
 */
import { ErrorCode, type ErrorPayload } from '../shared/errors.js';
import type { InferenceToFront } from '../shared/protocol/messages.js';

export class QueueFullLatch {
  private latched: ErrorPayload | undefined;

  /** The engine's refusal to repeat, while it is known to be full. */
  get refusal(): ErrorPayload | undefined {
    return this.latched;
  }

  /**
   * A request's last message, with how many other requests are still in flight: a queue-full refusal
   * latches while some are (one of them ending is what frees room); any other end opens it.
   */
  ended(message: Extract<InferenceToFront, { type: 'done' | 'failed' }>, othersInFlight: number): void {
    const full = message.type === 'failed' && message.error.code === ErrorCode.QueueFull && othersInFlight > 0;
    this.latched = full ? message.error : undefined;
  }

  /** The limits changed (a bigger queue, say): the engine decides again. */
  open(): void {
    this.latched = undefined;
  }
}
