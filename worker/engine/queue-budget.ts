/**
 * The one bound on everything that waits in the engine. A request waits either behind its own
 * agent's turn (agent-turns.ts) or in admission's FIFO queue for a sequence or KV cells
 * (admission.ts); both count here, against the same limits, so that neither path can grow without
 * bound. One agent may also hold only a few places: its turns run one at a time, so each waiting
 * turn adds a whole turn of latency to the ones behind it, and a client that fans one agent's
 * requests out (or retries without waiting) must not fill the queue that every agent shares.
 *
 * Places are held by request id and entering is idempotent: a turn that waited behind its agent and
 * then waits for cells keeps the place it was given, and is never refused halfway.
 */
import { ErrorCode, SemanticError } from '../../shared/errors.js';

export interface QueueLimits {
  /** Requests waiting at most. */
  maxQueued: number;
  /** Prompt + max tokens of all waiting requests at most: a queue of huge requests is refused too. */
  maxQueuedTokens: number;
  /** Requests of one agent waiting at most. */
  maxQueuedPerAgent: number;
}

/** Why a request may not wait: the queue is full (by count or tokens), or its agent holds its share. */
export type QueueRefusal = 'queue-full' | 'agent-queue-full';

/** Who holds a place: the request, and the agent whose share it counts against. */
export interface WaitKey {
  requestId: string;
  agentId: string;
}

/** The 429 for a request that may not wait. */
export function queueRefusalError(why: QueueRefusal): SemanticError {
  return why === 'queue-full'
    ? new SemanticError(ErrorCode.QueueFull, 'too many requests are waiting', { retryAfter: 1 })
    : new SemanticError(ErrorCode.AgentQueueFull, "too many of this agent's requests are waiting for its earlier turns (--max-queued-per-agent)", { retryAfter: 1 });
}

export class QueueBudget {
  private readonly places = new Map<string, { agentId: string; tokens: number }>();
  private readonly perAgent = new Map<string, number>();
  private tokenSum = 0;

  constructor(private limits: QueueLimits) {}

  /** Requests waiting, on either path. */
  get size(): number {
    return this.places.size;
  }

  /** Prompt + max tokens of the requests waiting. */
  get tokens(): number {
    return this.tokenSum;
  }

  /** Requests of `agentId` waiting. */
  waitingOf(agentId: string): number {
    return this.perAgent.get(agentId) ?? 0;
  }

  /** Limits can change at run time (the admin API); places already held stay. */
  setLimits(update: Partial<QueueLimits>): void {
    this.limits = { ...this.limits, ...update };
  }

  /** Takes a place for the request, or says why it may not wait. A request that holds one keeps it. */
  enter(key: WaitKey, tokens: number): QueueRefusal | undefined {
    if (this.places.has(key.requestId)) return undefined;
    const { maxQueued, maxQueuedTokens, maxQueuedPerAgent } = this.limits;
    if (this.places.size >= maxQueued || this.tokenSum + tokens > maxQueuedTokens) return 'queue-full';
    if (this.waitingOf(key.agentId) >= maxQueuedPerAgent) return 'agent-queue-full';
    this.places.set(key.requestId, { agentId: key.agentId, tokens });
    this.perAgent.set(key.agentId, this.waitingOf(key.agentId) + 1);
    this.tokenSum += tokens;
    return undefined;
  }

  /** Gives the request's place back (it started, was refused or aborted); nothing if it held none. */
  leave(requestId: string): void {
    const place = this.places.get(requestId);
    if (place === undefined) return;
    this.places.delete(requestId);
    this.tokenSum -= place.tokens;
    const left = this.waitingOf(place.agentId) - 1;
    if (left > 0) this.perAgent.set(place.agentId, left);
    else this.perAgent.delete(place.agentId);
  }
}
