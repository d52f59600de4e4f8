/**
 * Who may start decoding now. A request needs a sequence id and enough KV blocks for its prompt plus
 * its max tokens, so that an admitted request always runs to its end. A request that cannot fit now
 * waits in a bounded FIFO queue — for a sequence to free up, or for idle agents to be spilled out
 * of the KV cache at the next step — but only if it can fit once those idle agents are spilled:
 * otherwise, or when the queue is full, it is refused at once (429) rather than left waiting on
 * running requests of unknown length. A returning agent that still holds its sequence (its cache
 * is hot) brings its own sequence id and asks only for the blocks it lacks.
 */
import type { BlockPool } from './kv/block-pool.js';
import { ErrorCode, SemanticError } from '../../shared/errors.js';

export interface Reservation {
  seqId: number;
  /** Tokens the sequence's blocks are sized for. */
  tokens: number;
  /** Set when the first blocks are another sequence's (the request joins its cells): that sequence. */
  sharedWith?: number;
}

/** Another sequence whose first `blocks` blocks of cells a request will join instead of filling its own. */
export interface BlockShare {
  seqId: number;
  blocks: number;
}

export interface QueueLimits {
  /** Requests waiting at most. */
  maxQueued: number;
  /** Prompt + max tokens of all waiting requests at most: a queue of huge requests is refused too. */
  maxQueuedTokens: number;
}

export type AdmitResult = Reservation | 'queued' | 'no-room' | 'queue-full';

interface Waiting<T> {
  item: T;
  tokens: number;
  /** The sequence a returning agent already holds, if any. */
  seqId: number | undefined;
}

/** A refused request's 429: no room even after spilling every idle agent, or the wait queue is full. */
export function refusalError(why: 'no-room' | 'queue-full'): SemanticError {
  return why === 'no-room'
    ? new SemanticError(ErrorCode.PoolExhausted, 'not enough free KV memory for this prompt and its max tokens', { retryAfter: 1 })
    : new SemanticError(ErrorCode.QueueFull, 'too many requests are waiting', { retryAfter: 1 });
}

export class Admission<T> {
  private readonly freeSeqIds: number[];
  private readonly waiting: Waiting<T>[] = [];

  constructor(
    maxSequences: number,
    readonly pool: BlockPool,
    private limits: QueueLimits,
  ) {
    this.freeSeqIds = Array.from({ length: maxSequences }, (_, i) => i);
  }

  get queued(): number {
    return this.waiting.length;
  }

  get queuedTokens(): number {
    return this.waiting.reduce((sum, w) => sum + w.tokens, 0);
  }

  get freeSequences(): number {
    return this.freeSeqIds.length;
  }

  /** Queue limits can change at run time; requests already queued stay. */
  setLimits(limits: QueueLimits): void {
    this.limits = limits;
  }

  /**
   * Starts the request now, queues it, or refuses it. `spillableBlocks` are the blocks idle agents
   * hold, which the engine frees (spilling them to RAM or disk) for queued requests. With `share`,
   * a request that can start now holds the shared blocks and needs free ones only for the rest; one
   * that must wait is sized in full (by the time it starts, the cells it would join may be gone).
   */
  tryAdmit(item: T, tokens: number, spillableBlocks: number, seqId?: number, share?: BlockShare): AdmitResult {
    const need = this.blocksNeeded({ item, tokens, seqId });
    const promised = this.queuedBlocks();
    const ownSequence = seqId !== undefined;
    if (share !== undefined && (ownSequence || this.waiting.length === 0)) {
      const reservation = this.reserveShared(tokens, seqId, share, promised);
      if (reservation !== null) return reservation;
    }
    if ((ownSequence || this.waiting.length === 0) && need <= this.pool.freeBlocks - promised) {
      const reservation = this.reserve(tokens, seqId);
      if (reservation !== null) return reservation;
    }
    if (need + promised > this.pool.freeBlocks + spillableBlocks) return 'no-room';
    if (this.waiting.length >= this.limits.maxQueued || this.queuedTokens + tokens > this.limits.maxQueuedTokens) return 'queue-full';
    this.waiting.push({ item, tokens, seqId });
    return 'queued';
  }

  /** What the head of the queue lacks to start: a sequence id, blocks, or nothing (undefined: empty queue). */
  headShortfall(): { sequence: boolean; blocks: number } | undefined {
    const head = this.waiting[0];
    if (head === undefined) return undefined;
    return {
      sequence: head.seqId === undefined && this.freeSeqIds.length === 0,
      blocks: Math.max(0, this.blocksNeeded(head) - this.pool.freeBlocks),
    };
  }

  /** Starts queued requests in order while the head can start; returns them. */
  startQueued(): { item: T; reservation: Reservation }[] {
    const started: { item: T; reservation: Reservation }[] = [];
    for (;;) {
      const head = this.waiting[0];
      if (head === undefined) break;
      const reservation = this.reserve(head.tokens, head.seqId);
      if (reservation === null) break;
      this.waiting.shift();
      started.push({ item: head.item, reservation });
    }
    return started;
  }

  /**
   * A queued request, sized in full, started by joining `share`'s cells after all: it holds those
   * blocks instead, and gives back the fresh ones they replace (it never needs more).
   */
  joinShared(reservation: Reservation, share: BlockShare): void {
    if (reservation.sharedWith !== undefined) return;
    if (this.pool.reserveShared(reservation.seqId, reservation.tokens, share.seqId, share.blocks) !== null) reservation.sharedWith = share.seqId;
  }

  /** Resizes a held sequence's blocks (a finished turn shrunk to the cells it keeps); false if there is no room to grow. */
  resize(reservation: Reservation, tokens: number): boolean {
    if (this.pool.resize(reservation.seqId, tokens) === null) return false;
    reservation.tokens = tokens;
    return true;
  }

  /** Frees a sequence id and all its blocks. */
  releaseSequence(seqId: number): void {
    this.pool.free(seqId);
    this.freeSeqIds.push(seqId);
  }

  /** Removes a queued request (aborted before it started); undefined if it was not queued. */
  removeQueued(matches: (item: T) => boolean): T | undefined {
    const at = this.waiting.findIndex((w) => matches(w.item));
    if (at < 0) return undefined;
    return this.waiting.splice(at, 1)[0]?.item;
  }

  /** Removes and returns every queued request (engine shutting down or dead). */
  takeAllQueued(): T[] {
    return this.waiting.splice(0).map((w) => w.item);
  }

  /** Blocks a request still lacks: all its blocks, or what a held sequence must grow by. */
  private blocksNeeded(w: Waiting<T>): number {
    return w.seqId === undefined ? this.pool.blocksFor(w.tokens) : Math.max(0, this.pool.growthFor(w.seqId, w.tokens));
  }

  /** Blocks promised to queued requests: a newcomer may not take them. */
  private queuedBlocks(): number {
    return this.waiting.reduce((sum, w) => sum + this.blocksNeeded(w), 0);
  }

  /** Promised blocks stay out of reach: only what is free beyond them (and the sequence's own blocks) may be used. */
  private reserveShared(tokens: number, heldSeqId: number | undefined, share: BlockShare, promised: number): Reservation | null {
    const seqId = heldSeqId ?? this.freeSeqIds[0];
    if (seqId === undefined) return null;
    const fresh = this.pool.blocksFor(tokens) - share.blocks;
    if (fresh > this.pool.freeBlocks - promised + this.pool.ownBlocks(seqId)) return null;
    if (this.pool.reserveShared(seqId, tokens, share.seqId, share.blocks) === null) return null;
    if (heldSeqId === undefined) this.freeSeqIds.shift();
    return { seqId, tokens, sharedWith: share.seqId };
  }

  private reserve(tokens: number, heldSeqId: number | undefined): Reservation | null {
    const seqId = heldSeqId ?? this.freeSeqIds[0];
    if (seqId === undefined || this.pool.resize(seqId, tokens) === null) return null;
    if (heldSeqId === undefined) this.freeSeqIds.shift();
    return { seqId, tokens };
  }
}
