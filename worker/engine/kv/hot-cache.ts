/**
 * Agents whose KV cells stay in the context after their turn (the hot-idle tier): the sequence id
 * and the tokens those cells hold. The first to go when a request needs room, least recently used
 * first: the Map's insertion order is the recency order (an entry put back is re-inserted at the
 * end), so the least recently used is its first entry. (The RAM and disk tiers below it: tiers.ts.)
 */

export interface HotEntry {
  agentId: string;
  seqId: number;
  /** Tokens held in the sequence's cells, position i = tokens[i]. */
  tokens: Int32Array;
  /** The logits that followed the last of them (empty when unknown): see Sequence.finalLogits. */
  logits: Float32Array;
  /** When the turn that left these cells ended, ms since the epoch (the Agents API's last_used). */
  usedAt: number;
  /** Who may reuse a prefix of these cells (prefix-index.ts); undefined: the agent alone. */
  scope?: string | undefined;
}

export class HotCache {
  private readonly byAgent = new Map<string, HotEntry>();

  get size(): number {
    return this.byAgent.size;
  }

  get cells(): number {
    let total = 0;
    for (const entry of this.byAgent.values()) total += entry.tokens.length;
    return total;
  }

  /** Parks an agent's cells; returns the entry, whose identity says "this very turn" (see AgentTiers). */
  put(agentId: string, seqId: number, tokens: Int32Array, logits: Float32Array, usedAt = Date.now(), scope?: string): HotEntry {
    const entry = { agentId, seqId, tokens, logits, usedAt, scope };
    this.restore(entry);
    return entry;
  }

  /** Puts a taken entry back unchanged, as the most recently used (its request was refused or aborted before it started). */
  restore(entry: HotEntry): void {
    this.byAgent.delete(entry.agentId);
    this.byAgent.set(entry.agentId, entry);
  }

  entries(): IterableIterator<HotEntry> {
    return this.byAgent.values();
  }

  peek(agentId: string): HotEntry | undefined {
    return this.byAgent.get(agentId);
  }

  /** Removes and returns the agent's entry, to be reused by its new request. */
  take(agentId: string): HotEntry | undefined {
    const entry = this.byAgent.get(agentId);
    this.byAgent.delete(agentId);
    return entry;
  }

  /** Removes and returns the least recently used entry. */
  takeLeastRecent(): HotEntry | undefined {
    const oldest = this.byAgent.values().next().value;
    if (oldest !== undefined) this.byAgent.delete(oldest.agentId);
    return oldest;
  }
}

/**
 * The logits row the RAM and disk tiers store beside a state, or an empty one (reusablePrefix then
 * computes the last prompt token again). The row (vocabulary × 4
 * bytes: 600 KB for Qwen2.5's 151,936 tokens) lets the very same prompt again sample its first token
 * without a decode. It is kept only when it is no bigger than the state it rides with: for a short
 * conversation it would be most of the bytes held (50× a 20-token state), while losing it costs
 * one token's decode when the exact prompt returns (the last prompt token is computed again).
 */
export function keptLogits(logits: Float32Array, stateBytes: number): Float32Array {
  return logits.byteLength <= stateBytes ? logits : EMPTY_LOGITS;
}

const EMPTY_LOGITS = new Float32Array(0);

/**
 * How much of an agent's cached turn a new prompt reuses: the common prefix, but not the prompt's last
 * token, whose logits give the first new token — unless the cache holds exactly the prompt and the
 * logits that followed it (a retried or repeated request), which are then sampled without a decode.
 */
export function reusablePrefix(cached: { tokens: Int32Array; logits: Float32Array }, prompt: Int32Array): { tokens: number; logits?: Float32Array } {
  const common = commonPrefixLength(cached.tokens, prompt);
  if (common === prompt.length && cached.tokens.length === common && cached.logits.length > 0) return { tokens: common, logits: cached.logits };
  return { tokens: Math.min(common, prompt.length - 1) };
}

/** Length of the longest common prefix of two token sequences. */
export function commonPrefixLength(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  return i;
}
