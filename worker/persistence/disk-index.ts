/**
 * The disk tier's bookkeeping, kept apart from the file I/O so its rules can be tested without a
 * file system: bytes held per agent under a byte budget, least recently used deleted first. The Map's
 * insertion order is the recency order (an agent used is re-inserted at the end), so marking use is
 * O(1) and eviction walks from the front without sorting or ties.
 *
 * It mirrors what is on disk once writes land: a write is recorded when it completes, with the bytes
 * it wrote, replacing the agent's previous size, so whichever write renames its file last is what is
 * counted, and nothing is counted twice.
 */

export interface DiskEntry {
  agentId: string;
  bytes: number;
  /** Milliseconds since the epoch: the file's mtime at startup, then the agent's last load or write. */
  lastUsed: number;
  /** Tokens the file holds, once known (written or read since startup; the startup index reads no headers). */
  tokens?: number;
}

export class DiskIndex {
  private readonly held = new Map<string, DiskEntry>();
  /** Writes started and not yet settled, per agent: such an agent counts as present and is never evicted. */
  private readonly writing = new Map<string, number>();
  private bytesHeld = 0;
  /** Told of every agent whose file leaves the index (deleted, evicted, found bad). */
  onRemoved: (agentId: string) => void = () => undefined;

  constructor(
    readonly budgetBytes: number,
    private readonly now: () => number = Date.now,
    /** Bytes held outside the agents' files (shared-prefix segments), counted against the budget too. */
    private readonly outsideBytes: () => number = () => 0,
  ) {}

  get size(): number {
    return this.held.size;
  }

  get bytes(): number {
    return this.bytesHeld;
  }

  /** Whether the agent has a file, or one on the way (a load then waits for that write). */
  has(agentId: string): boolean {
    return this.held.has(agentId) || this.writing.has(agentId);
  }

  /** A state this large could never be kept without evicting itself: it is not written at all. */
  fits(bytes: number): boolean {
    return bytes <= this.budgetBytes;
  }

  /** Least recently used first, as copies: callers list them, they do not change them. */
  entries(): DiskEntry[] {
    return [...this.held.values()].map((entry) => ({ ...entry }));
  }

  /** Files found at startup; their mtimes give the order. Returns agents to delete to get under the budget. */
  restore(found: DiskEntry[]): string[] {
    for (const entry of [...found].sort((a, b) => a.lastUsed - b.lastUsed)) this.set(entry.agentId, entry.bytes, entry.lastUsed);
    return this.evictBeyondBudget();
  }

  touch(agentId: string): void {
    const entry = this.held.get(agentId);
    if (entry !== undefined) this.set(agentId, entry.bytes, this.now(), entry.tokens);
  }

  /** Whether the agent's token count is known (written, read, or learnt from its file's header). */
  hasTokens(agentId: string): boolean {
    return this.held.get(agentId)?.tokens !== undefined;
  }

  /** Records what a read of the agent's file found, without counting it as a use. */
  noteTokens(agentId: string, tokens: number): void {
    const entry = this.held.get(agentId);
    if (entry !== undefined) entry.tokens = tokens;
  }

  writeStarted(agentId: string): void {
    this.writing.set(agentId, (this.writing.get(agentId) ?? 0) + 1);
    this.touch(agentId);
  }

  /**
   * Records a settled write (`bytes` undefined: it failed and the previous file, if any, is still
   * there) and returns the agents to delete to get back under the budget: least recently used first,
   * never the agent just written nor one with a write still in flight (its file is about to change).
   */
  writeEnded(agentId: string, bytes: number | undefined, tokens?: number): string[] {
    const pending = (this.writing.get(agentId) ?? 1) - 1;
    if (pending > 0) this.writing.set(agentId, pending);
    else this.writing.delete(agentId);
    if (bytes === undefined) return [];
    this.set(agentId, bytes, this.now(), tokens);
    return this.evictBeyondBudget(agentId);
  }

  /** The agent's file was rewritten smaller (its prefix moved to a segment); its use and tokens are kept. */
  resize(agentId: string, bytes: number): string[] {
    const entry = this.held.get(agentId);
    if (entry === undefined) return [];
    this.bytesHeld += bytes - entry.bytes;
    entry.bytes = bytes;
    return this.evictBeyondBudget(agentId);
  }

  /** A file another process sharing the dir wrote (another worker of the supervisor): counted here from now on. */
  adopt(agentId: string, bytes: number): string[] {
    this.set(agentId, bytes, this.now());
    return this.evictBeyondBudget(agentId);
  }

  remove(agentId: string): void {
    if (this.unset(agentId)) this.onRemoved(agentId);
  }

  private unset(agentId: string): boolean {
    const entry = this.held.get(agentId);
    if (entry === undefined) return false;
    this.held.delete(agentId);
    this.bytesHeld -= entry.bytes;
    return true;
  }

  private set(agentId: string, bytes: number, lastUsed: number, tokens?: number): void {
    this.unset(agentId);
    this.held.set(agentId, tokens === undefined ? { agentId, bytes, lastUsed } : { agentId, bytes, lastUsed, tokens });
    this.bytesHeld += bytes;
  }

  private evictBeyondBudget(keep?: string): string[] {
    const evicted: string[] = [];
    for (const { agentId } of this.held.values()) {
      if (this.bytesHeld + this.outsideBytes() <= this.budgetBytes) break;
      if (agentId === keep || this.writing.has(agentId)) continue;
      this.remove(agentId);
      evicted.push(agentId);
    }
    return evicted;
  }
}
