/**
 * The RAM tier: idle agents' exported KV state (llama_state_seq_get_data bytes) and the tokens it
 * holds, under a byte budget, least recently used out first (the Map's insertion order is the
 * recency order: a stored state is inserted at the end). Restoring from here is one state import
 * (a memcpy into the KV cells) instead of a prefill.
 */

export interface RamEntry {
  agentId: string;
  tokens: Int32Array;
  logits: Float32Array;
  state: Uint8Array;
  /** When the agent's turn ended, ms since the epoch (not when it was spilled here). */
  usedAt: number;
  /** Who may reuse a prefix of this state (prefix-index.ts); undefined: the agent alone. */
  scope?: string | undefined;
}

const bytesOf = (entry: { state: Uint8Array; logits: Float32Array }): number => entry.state.byteLength + entry.logits.byteLength;

export class RamCache {
  private readonly entries = new Map<string, RamEntry>();
  private bytesHeld = 0;

  constructor(readonly budgetBytes: number) {}

  get size(): number {
    return this.entries.size;
  }

  get bytes(): number {
    return this.bytesHeld;
  }

  /** Stores (or replaces) the agent's state; evicts least recently used entries beyond the budget. */
  put(agentId: string, tokens: Int32Array, state: Uint8Array, logits: Float32Array, usedAt = Date.now(), scope?: string): void {
    this.take(agentId);
    if (bytesOf({ state, logits }) > this.budgetBytes) return;
    this.entries.set(agentId, { agentId, tokens, logits, state, usedAt, scope });
    this.bytesHeld += bytesOf({ state, logits });
    while (this.bytesHeld > this.budgetBytes) this.dropLeastRecent();
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
    this.bytesHeld -= bytesOf(entry);
    return entry;
  }

  private dropLeastRecent(): void {
    const oldest = this.entries.keys().next().value;
    if (oldest !== undefined) this.take(oldest);
  }
}
