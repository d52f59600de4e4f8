/**
 * Who may start decoding now. A request needs a sequence id and enough KV blocks for its prompt plus
 * its max tokens, so that an admitted request always runs to its end. A request that cannot start
 * now waits in a FIFO queue — for a sequence or blocks to free up as running requests end, or for
 * idle agents to be spilled out of the KV cache at the next step — bounded by the engine's one
 * QueueBudget (count, tokens, per agent): only a full queue is answered 429 at once. A request
 * larger than the context never gets here (RequestInput answers it 400). A returning agent that
 * still holds its sequence (its cache is hot) brings its own sequence id and asks only for the
 * blocks it lacks; while it waits, that sequence and its blocks stay its own ("pinned").
 */
import type { BlockPool } from './kv/block-pool.js';
import type { QueueBudget, QueueRefusal, WaitKey } from './queue-budget.js';
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

/** Why a request is refused at once: it could never start behind the queue, or may not wait (queue-budget.ts). */
export type Refusal = 'no-room' | QueueRefusal;

export type AdmitResult = Reservation | 'queued' | Refusal;

interface Waiting<T> {
  item: T;
  tokens: number;
  /** The sequence a returning agent already holds, if any. */
  seqId: number | undefined;
}

/**
 * The 429 for a request that could never start behind the queue: the requests queued ahead of it
 * keep their agents' caches (sequences and blocks) while they wait, and what is left is too small.
 */
export function noRoomError(): SemanticError {
  return new SemanticError(ErrorCode.PoolExhausted, "not enough KV memory for this prompt and its max tokens beside the agents' caches held by queued requests", { retryAfter: 1 });
}

export class Admission<T> {
  private readonly freeSeqIds: number[];
  private readonly waiting: Waiting<T>[] = [];

  constructor(
    private readonly maxSequences: number,
    readonly pool: BlockPool,
    private readonly budget: QueueBudget,
    /** The request an item is, and its agent: what its place in the budget is held by. */
    private readonly keyOf: (item: T) => WaitKey,
  ) {
    this.freeSeqIds = Array.from({ length: maxSequences }, (_, i) => i);
  }

  /** Requests in this queue (those waiting behind their agent's turn are not). */
  get queued(): number {
    return this.waiting.length;
  }

  get freeSequences(): number {
    return this.freeSeqIds.length;
  }

  /**
   * Starts the request now, queues it, or refuses it. With `share`, a request that can start now
   * holds the shared blocks and needs free ones only for the rest; one that must wait is sized in
   * full (by the time it starts, the cells it would join may be gone). A request that starts or is
   * refused gives back the budget place it held while it waited behind its agent's turn.
   */
  tryAdmit(item: T, tokens: number, seqId?: number, share?: BlockShare): AdmitResult {
    const candidate = { item, tokens, seqId };
    const key = this.keyOf(item);
    const started = this.startNow(candidate, share);
    const outcome = started ?? (this.canEverStart(candidate) ? this.budget.enter(key, tokens) : 'no-room');
    if (outcome !== undefined) {
      this.budget.leave(key.requestId);
      return outcome;
    }
    this.waiting.push(candidate);
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
      this.budget.leave(this.keyOf(head.item).requestId);
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
    return this.leaveQueue(this.waiting.splice(at, 1));
  }

  /**
   * Removes the head, which nothing running will make room for (a safety net: canEverStart keeps
   * this from happening), so that no request waits forever.
   */
  removeHead(): T | undefined {
    return this.leaveQueue(this.waiting.splice(0, 1));
  }

  /** Removes and returns every queued request (engine shutting down or dead). */
  takeAllQueued(): T[] {
    const all = this.waiting.splice(0);
    for (const w of all) this.budget.leave(this.keyOf(w.item).requestId);
    return all.map((w) => w.item);
  }

  private leaveQueue(removed: Waiting<T>[]): T | undefined {
    const item = removed[0]?.item;
    if (item !== undefined) this.budget.leave(this.keyOf(item).requestId);
    return item;
  }

  /**
   * A reservation if the request may start at once: a returning agent with its own sequence, or
   * anyone when nobody waits (FIFO), and only out of blocks not promised to queued requests. A
   * returning agent whose cache already holds all the blocks it needs takes none: it starts even
   * when the free ones are promised (made to wait, it would pin those blocks for nothing).
   */
  private startNow(candidate: Waiting<T>, share: BlockShare | undefined): Reservation | undefined {
    const { tokens, seqId } = candidate;
    if (seqId === undefined && this.waiting.length > 0) return undefined;
    const promised = this.queuedBlocks();
    if (share !== undefined) {
      const reservation = this.reserveShared(tokens, seqId, share, promised);
      if (reservation !== null) return reservation;
    }
    const need = this.blocksNeeded(candidate);
    if (need > 0 && need > this.pool.freeBlocks - promised) return undefined;
    return this.reserve(tokens, seqId) ?? undefined;
  }

  /**
   * Whether the candidate, queued at the tail, is sure to start in its turn. Running requests hold
   * full reservations, so they end and give their blocks back (to idle agents, which are spilled
   * for the queue); what stays taken while a request waits at the head is only what the requests
   * behind it pinned: their agents' sequences and blocks. So each request, from the tail forwards,
   * must fit beside the pins behind it:
   *
   *   queue:   head ─────────────────────────── tail (candidate)
   *            [ q0 ][ q1 (pins 3 blocks) ][ q2 ][ cand (pins 2) ]
   *   q0 fits if blocksFor(q0) + 3 + 2 ≤ total blocks, and 2 pinned sequences + its own ≤ max
   */
  private canEverStart(candidate: Waiting<T>): boolean {
    const queue = [...this.waiting, candidate];
    let pinnedBlocks = 0;
    let pinnedSequences = 0;
    for (let i = queue.length - 1; i >= 0; i--) {
      const { tokens, seqId } = queue[i] as Waiting<T>;
      const own = seqId === undefined ? 0 : this.pool.blocksOf(seqId).length;
      if (Math.max(own, this.pool.blocksFor(tokens)) + pinnedBlocks > this.pool.totalBlocks) return false;
      if (pinnedSequences + 1 > this.maxSequences) return false;
      if (seqId === undefined) continue;
      pinnedBlocks += own;
      pinnedSequences++;
    }
    return true;
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
