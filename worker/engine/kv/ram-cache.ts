/**
 * The RAM tier: idle agents' exported KV state (llama_state_seq_get_data bytes) and the tokens it
 * holds, under a byte budget, least recently used out first. Restoring from here is one state import
 * (a memcpy into the KV cells) instead of a prefill.
 */

export interface RamEntry {
  agentId: string;
  tokens: Int32Array;
  state: Uint8Array;
  lastUsed: number;
}

export class RamCache {
  private readonly entries = new Map<string, RamEntry>();
  private bytesHeld = 0;
  private clock = 0;

  constructor(readonly budgetBytes: number) {}

  get size(): number {
    return this.entries.size;
  }

  get bytes(): number {
    return this.bytesHeld;
  }

  /** Stores (or replaces) the agent's state; evicts least recently used entries beyond the budget. */
  put(agentId: string, tokens: Int32Array, state: Uint8Array): void {
    this.take(agentId);
    if (state.byteLength > this.budgetBytes) return;
    this.entries.set(agentId, { agentId, tokens, state, lastUsed: ++this.clock });
    this.bytesHeld += state.byteLength;
    while (this.bytesHeld > this.budgetBytes) this.dropLeastRecent();
  }

  take(agentId: string): RamEntry | undefined {
    const entry = this.entries.get(agentId);
    if (entry === undefined) return undefined;
    this.entries.delete(agentId);
    this.bytesHeld -= entry.state.byteLength;
    return entry;
  }

  private dropLeastRecent(): void {
    let oldest: RamEntry | undefined;
    for (const entry of this.entries.values()) if (oldest === undefined || entry.lastUsed < oldest.lastUsed) oldest = entry;
    if (oldest !== undefined) this.take(oldest.agentId);
  }
}
