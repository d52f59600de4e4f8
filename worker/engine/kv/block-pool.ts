/**
 * The KV memory of the one llama context, accounted in fixed-size blocks of `blockSize` cells.
 * llama.cpp places cells itself; the pool decides how many each sequence may hold, so that an
 * admitted request is sure to have room for its prompt and all its output, utilisation is one
 * number, and "no room" is known before a decode fails. No room is a `null` result, never a throw:
 * running out of KV memory is an expected event (answered 429), not an error.
 *
 * The free list is FIFO: blocks are handed out from its head and freed blocks join its tail, a
 * sequence's last block first. Block ids are logical (llama.cpp's cells are not addressed by them),
 * but a fixed order makes the pool's behaviour exact and testable.
 */

export class BlockPool {
  readonly totalBlocks: number;
  private readonly freeList: number[];
  /** Each sequence's blocks, in allocation order. */
  private readonly tables = new Map<number, number[]>();

  constructor(
    totalCells: number,
    readonly blockSize: number,
  ) {
    if (!Number.isInteger(blockSize) || blockSize < 1) throw new RangeError(`block size must be a positive integer, got ${blockSize}`);
    this.totalBlocks = Math.floor(totalCells / blockSize);
    this.freeList = Array.from({ length: this.totalBlocks }, (_, id) => id);
  }

  /** The most tokens one sequence can ever hold: whole blocks only. */
  get capacityTokens(): number {
    return this.totalBlocks * this.blockSize;
  }

  get freeBlocks(): number {
    return this.freeList.length;
  }

  get usedBlocks(): number {
    return this.totalBlocks - this.freeList.length;
  }

  /** Used blocks / total blocks, 0 for an empty pool. */
  get utilisation(): number {
    return this.totalBlocks === 0 ? 0 : this.usedBlocks / this.totalBlocks;
  }

  blocksFor(tokens: number): number {
    return Math.ceil(Math.max(0, tokens) / this.blockSize);
  }

  /** The blocks a sequence holds (empty if none). */
  blocksOf(seqId: number): readonly number[] {
    return this.tables.get(seqId) ?? [];
  }

  /** Blocks the sequence must gain to hold `tokens` (negative: blocks it would give back). */
  growthFor(seqId: number, tokens: number): number {
    return this.blocksFor(tokens) - this.blocksOf(seqId).length;
  }

  /**
   * Grows or shrinks a sequence's blocks to hold `tokens`. Returns its blocks, or null when there
   * are not enough free blocks, in which case nothing changed.
   */
  resize(seqId: number, tokens: number): readonly number[] | null {
    const table = this.tables.get(seqId) ?? [];
    const growth = this.blocksFor(tokens) - table.length;
    if (growth > this.freeList.length) return null;
    if (growth > 0) table.push(...this.freeList.splice(0, growth));
    else if (growth < 0) this.freeList.push(...table.splice(growth).reverse());
    if (table.length === 0) this.tables.delete(seqId);
    else this.tables.set(seqId, table);
    return table;
  }

  /** Gives all of a sequence's blocks back. */
  free(seqId: number): void {
    this.resize(seqId, 0);
  }
}
