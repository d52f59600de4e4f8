/**
 * Who may start decoding now. A request needs a free sequence id and enough unreserved KV cells for
 * its prompt plus its max tokens, so that an admitted request can always run to its end; otherwise it
 * waits in a bounded FIFO queue, and a full queue is refused at once (429) rather than queued without
 * bound. (The block pool of a later stage replaces the cell counting; the interface stays.)
 */

export interface Reservation {
  seqId: number;
  cells: number;
}

export class Admission<T> {
  private readonly freeSeqIds: number[];
  private reservedCells = 0;
  private readonly waiting: { item: T; cells: number }[] = [];

  constructor(
    maxSequences: number,
    readonly totalCells: number,
    private readonly maxQueued: number,
    /** Prompt + max tokens of all waiting requests at most: a queue of huge requests is refused too. */
    private readonly maxQueuedCells = Infinity,
  ) {
    this.freeSeqIds = Array.from({ length: maxSequences }, (_, i) => i);
  }

  get queued(): number {
    return this.waiting.length;
  }

  get freeSequences(): number {
    return this.freeSeqIds.length;
  }

  /** A reservation if the request can start now; null if it was queued; throws nothing. */
  tryAdmit(item: T, cells: number): Reservation | null | 'queue-full' {
    if (this.waiting.length === 0) {
      const reservation = this.reserve(cells);
      if (reservation !== null) return reservation;
    }
    const waitingCells = this.waiting.reduce((sum, w) => sum + w.cells, 0);
    if (this.waiting.length >= this.maxQueued || waitingCells + cells > this.maxQueuedCells) return 'queue-full';
    this.waiting.push({ item, cells });
    return null;
  }

  /** Frees a finished request's sequence and cells, and returns queued requests that can start now. */
  release(reservation: Reservation): { item: T; reservation: Reservation }[] {
    this.freeSeqIds.push(reservation.seqId);
    this.reservedCells -= reservation.cells;
    return this.startWaiting();
  }

  private startWaiting(): { item: T; reservation: Reservation }[] {
    const started: { item: T; reservation: Reservation }[] = [];
    for (;;) {
      const head = this.waiting[0];
      if (head === undefined) break;
      const next = this.reserve(head.cells);
      if (next === null) break;
      this.waiting.shift();
      started.push({ item: head.item, reservation: next });
    }
    return started;
  }

  /**
   * Changes how many cells a held sequence reserves (a returning agent's cache grown to its new
   * request, or a finished turn shrunk to the cells it keeps). Growing fails, changing nothing, when
   * the cells are not free; shrinking may let queued requests start, which are returned.
   */
  resize(reservation: Reservation, cells: number): { item: T; reservation: Reservation }[] | null {
    const growing = cells > reservation.cells;
    if (growing && this.reservedCells - reservation.cells + cells > this.totalCells) return null;
    this.reservedCells += cells - reservation.cells;
    reservation.cells = cells;
    return growing ? [] : this.startWaiting();
  }

  isQueued(item: T): boolean {
    return this.waiting.some((w) => w.item === item);
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

  private reserve(cells: number): Reservation | null {
    if (this.freeSeqIds.length === 0 || this.reservedCells + cells > this.totalCells) return null;
    const seqId = this.freeSeqIds.shift() as number;
    this.reservedCells += cells;
    return { seqId, cells };
  }
}
