/**
 * The RAM tier: idle agents' exported KV state (llama_state_seq_get_data bytes) and the tokens it
 * holds, under a byte budget, least recently used out first (the Map's insertion order is the
 * recency order: a stored state is inserted at the end). Restoring from here is one state import
 * (a memcpy into the KV cells) instead of a prefill.
 *
 * A prefix that agents of one sharing scope have in common (a swarm's system prompt) is stored once:
 * a content-addressed segment holding the prefix's cells (ram-segments.ts), referenced by each
 * agent's entry, which keeps only its own cells past it. A segment is freed with its last reference,
 * so evicting agents by LRU evicts a shared prefix as a unit, once nobody uses it.
 */
import { keptLogits } from './hot-cache.js';
import { RamSegments } from './ram-segments.js';
import type { RamEntry } from './ram-entry.js';

/** What an entry holds alone: its own cells and its logits (a segment is counted once, by the tier). */
const ownBytes = (entry: { own: Uint8Array; logits: Float32Array }): number => entry.own.byteLength + entry.logits.byteLength;

export class RamCache {
  private readonly entries = new Map<string, RamEntry>();
  private readonly segments: RamSegments;
  private bytesHeld = 0;

  constructor(
    readonly budgetBytes: number,
    /** The prefix index's block size: segments end on whole blocks. */
    blockTokens = 16,
    /** A prefix shorter than this is not worth a segment (cutting and joining states costs more than it saves). */
    minSharedTokens = 4 * blockTokens,
    /** Learns of each entry the budget pushes out, before it goes (`state` joins its cells on demand). */
    private readonly onEvict: (entry: RamEntry, state: () => Uint8Array) => void = () => undefined,
  ) {
    this.segments = new RamSegments(blockTokens, minSharedTokens);
  }

  get size(): number {
    return this.entries.size;
  }

  /** Bytes held: every entry's own cells and logits, and each shared segment once. */
  get bytes(): number {
    return this.bytesHeld + this.segments.bytes;
  }

  /** Bytes of the shared segments alone. */
  get sharedBytes(): number {
    return this.segments.bytes;
  }

  get segmentCount(): number {
    return this.segments.count;
  }

  /**
   * Stores (or replaces) the agent's state, on a shared segment when another entry of its scope
   * opens with the same tokens; evicts least recently used entries beyond the budget. Returns the
   * entry, or undefined when the state alone exceeds the budget (nothing is stored). The logits row
   * is kept only when no bigger than the state (keptLogits).
   */
  put(agentId: string, tokens: Int32Array, state: Uint8Array, allLogits: Float32Array, usedAt = Date.now(), scope?: string): RamEntry | undefined {
    this.take(agentId);
    const logits = keptLogits(allLogits, state.byteLength);
    if (state.byteLength + logits.byteLength > this.budgetBytes) return undefined;
    const entry: RamEntry = { agentId, tokens, logits, own: state, usedAt, scope };
    this.segments.place(
      entry,
      (id) => this.entries.get(id),
      (other, own) => {
        this.bytesHeld += own.byteLength - other.own.byteLength;
        other.own = own;
      },
    );
    this.entries.set(agentId, entry);
    this.bytesHeld += ownBytes(entry);
    while (this.bytes > this.budgetBytes) this.dropLeastRecent();
    return this.entries.get(agentId);
  }

  peek(agentId: string): RamEntry | undefined {
    return this.entries.get(agentId);
  }

  /** Least recently used first. */
  values(): IterableIterator<RamEntry> {
    return this.entries.values();
  }

  take(agentId: string): RamEntry | undefined {
    const entry = this.entries.get(agentId);
    if (entry === undefined) return undefined;
    this.entries.delete(agentId);
    this.bytesHeld -= ownBytes(entry);
    this.segments.release(entry);
    return entry;
  }

  /** The entry's whole state, its segment's cells and its own joined: what llama.cpp imports. */
  stateOf(entry: RamEntry): Uint8Array {
    return this.segments.whole(entry);
  }

  /** The entry's state cut to the cells at positions [0, keep); undefined when it cannot be cut here. */
  prefixStateOf(entry: RamEntry, keep: number): Uint8Array | undefined {
    return this.segments.prefix(entry, keep);
  }

  private dropLeastRecent(): void {
    const oldest = this.entries.values().next().value;
    if (oldest === undefined) return;
    this.onEvict(oldest, () => this.stateOf(oldest));
    this.take(oldest.agentId);
  }
}
