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
 *
 * Blocks are reference-counted: a sequence that joins another's cells (llama_memory_seq_cp adds a
 * sequence to cells, it copies nothing) holds that sequence's first blocks too (`reserveShared`), and
 * a block is free again only when its last holder lets it go. So N agents on one prefix count it once.
 */

export class BlockPool {
  readonly totalBlocks: number;
  private readonly freeList: number[];
  /** Each sequence's blocks, in allocation order; a shared prefix's blocks come first. */
  private readonly tables = new Map<number, number[]>();
  /** Holders of each block (0: free). */
  private readonly holders: Uint32Array;

  constructor(
    totalCells: number,
    readonly blockSize: number,
  ) {
    if (!Number.isInteger(blockSize) || blockSize < 1) throw new RangeError(`block size must be a positive integer, got ${blockSize}`);
    this.totalBlocks = Math.floor(totalCells / blockSize);
    this.freeList = Array.from({ length: this.totalBlocks }, (_, id) => id);
    this.holders = new Uint32Array(this.totalBlocks);
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

  /** The sequence's blocks no other sequence holds: what freeing it would give back. */
  ownBlocks(seqId: number): number {
    return this.blocksOf(seqId).reduce((n, block) => n + (this.holders[block] === 1 ? 1 : 0), 0);
  }

  /** Blocks that would be free once all of `seqIds` let their blocks go (a block another sequence holds is not). */
  freedBy(seqIds: Iterable<number>): number {
    const releases = new Map<number, number>();
    for (const seqId of seqIds) for (const block of this.blocksOf(seqId)) releases.set(block, (releases.get(block) ?? 0) + 1);
    let freed = 0;
    for (const [block, count] of releases) if (this.holders[block] === count) freed++;
    return freed;
  }

  /** Every block that some sequence other than `seqIds` holds. */
  blocksOutside(seqIds: ReadonlySet<number>): Set<number> {
    const held = new Set<number>();
    for (const [seqId, table] of this.tables) if (!seqIds.has(seqId)) for (const block of table) held.add(block);
    return held;
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
    if (growth > 0) table.push(...this.take(growth));
    else if (growth < 0) this.release(table.splice(growth).reverse());
    this.store(seqId, table);
    return table;
  }

  /**
   * Sizes `seqId` for `tokens` whose first `blocks` blocks are `source`'s first blocks (the cells it
   * joined), dropping whatever the sequence held before; only the rest comes from the free list.
   * Null, with nothing changed, when that rest does not fit or `source` holds fewer blocks.
   */
  reserveShared(seqId: number, tokens: number, source: number, blocks: number): readonly number[] | null {
    const shared = this.blocksOf(source).slice(0, blocks);
    const fresh = Math.max(0, this.blocksFor(tokens) - shared.length);
    if (seqId === source || shared.length < blocks || fresh > this.freeList.length + this.ownBlocks(seqId)) return null;
    for (const block of shared) (this.holders[block] as number)++;
    this.release([...this.blocksOf(seqId)].reverse());
    const table = [...shared, ...this.take(fresh)];
    this.store(seqId, table);
    return table;
  }

  /** Gives all of a sequence's blocks back. */
  free(seqId: number): void {
    this.resize(seqId, 0);
  }

  private take(count: number): number[] {
    const blocks = this.freeList.splice(0, count);
    for (const block of blocks) this.holders[block] = 1;
    return blocks;
  }

  /** One holder fewer for each block; a block nobody holds joins the free list. */
  private release(blocks: readonly number[]): void {
    for (const block of blocks) {
      const left = (this.holders[block] as number) - 1;
      this.holders[block] = left;
      if (left === 0) this.freeList.push(block);
    }
  }

  private store(seqId: number, table: number[]): void {
    if (table.length === 0) this.tables.delete(seqId);
    else this.tables.set(seqId, table);
  }
}
