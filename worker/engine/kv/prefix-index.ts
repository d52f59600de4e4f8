/**
 * One index over every agent's cached token sequence, in whatever tier it lies: "which agents hold
 * the longest cached prefix of these tokens?" in time proportional to the prompt's blocks, never to
 * the number of agents. As vLLM does, tokens are cut into fixed blocks and each block is named by a
 * hash chained over every block before it (the KV of a position depends on all earlier tokens), so
 * one map lookup per block follows the prompt down to the deepest block some agent also holds.
 *
 * The chain is seeded with the sharing scope (an API key's id, or '*'), so agents of another scope
 * are never found: a hit's timing would tell that someone sent the prefix. Hashes only point at
 * candidates; callers compare the candidate's actual tokens before reusing anything, so a collision
 * can cost a lookup, never a wrong answer.
 */

interface Indexed {
  scope: string;
  hashes: number[];
  /** The tokens themselves (4 bytes each, against kilobytes of KV per token): a candidate's exact common prefix. */
  tokens: ArrayLike<number>;
}

/** 32-bit FNV-1a steps over one block's tokens, two lanes combined into one safe integer. */
function blockHash(previous: number, tokens: ArrayLike<number>, from: number, to: number): number {
  let a = (previous >>> 0) ^ 0x811c9dc5;
  let b = Math.floor(previous / 2 ** 32) ^ 0x01000193;
  for (let i = from; i < to; i++) {
    const t = tokens[i] as number;
    a = Math.imul(a ^ t, 0x01000193);
    b = Math.imul(b ^ (t + 0x9e3779b9), 0x5bd1e995);
    b ^= b >>> 15;
  }
  return ((b >>> 0) % 2 ** 21) * 2 ** 32 + (a >>> 0);
}

function scopeSeed(scope: string): number {
  const codes = Array.from(scope, (c) => c.codePointAt(0) ?? 0);
  return blockHash(0x2545f491, codes, 0, codes.length);
}

export class PrefixIndex {
  private readonly holders = new Map<number, Set<string>>();
  private readonly byAgent = new Map<string, Indexed>();

  constructor(readonly blockTokens: number) {}

  get agents(): number {
    return this.byAgent.size;
  }

  /** The chained hashes of every whole block of `tokens`, in `scope`. */
  chain(scope: string, tokens: ArrayLike<number>): number[] {
    const hashes: number[] = [];
    let previous = scopeSeed(scope);
    for (let end = this.blockTokens; end <= tokens.length; end += this.blockTokens) {
      previous = blockHash(previous, tokens, end - this.blockTokens, end);
      hashes.push(previous);
    }
    return hashes;
  }

  /** The agent's cache now holds `tokens` (replacing what it held); no scope: it shares nothing. */
  set(agentId: string, scope: string | undefined, tokens: ArrayLike<number>): void {
    this.remove(agentId);
    if (scope === undefined) return;
    const hashes = this.chain(scope, tokens);
    this.byAgent.set(agentId, { scope, hashes, tokens });
    for (const hash of hashes) {
      let set = this.holders.get(hash);
      if (set === undefined) this.holders.set(hash, (set = new Set()));
      set.add(agentId);
    }
  }

  remove(agentId: string): void {
    const indexed = this.byAgent.get(agentId);
    if (indexed === undefined) return;
    this.byAgent.delete(agentId);
    for (const hash of indexed.hashes) {
      const set = this.holders.get(hash);
      set?.delete(agentId);
      if (set?.size === 0) this.holders.delete(hash);
    }
  }

  /** Keeps only the agents `kept` says yes to. */
  retain(kept: (agentId: string) => boolean): void {
    for (const agentId of [...this.byAgent.keys()]) if (!kept(agentId)) this.remove(agentId);
  }

  has(agentId: string): boolean {
    return this.byAgent.has(agentId);
  }

  /** The tokens last indexed for the agent (its file may hold an older turn: check what is loaded). */
  tokensOf(agentId: string): ArrayLike<number> {
    return this.byAgent.get(agentId)?.tokens ?? [];
  }

  /**
   * The agents holding the deepest whole-block prefix of `tokens` in `scope`, and that depth in
   * tokens; `usable` filters candidates (one with nothing to offer now), the walk goes no deeper
   * than the usable ones reach. `agents` lists at most `limit` usable holders (a chat template's
   * opening block can have thousands: one per stateless conversation); `holders` is all of them.
   */
  longest(scope: string, tokens: ArrayLike<number>, usable: (agentId: string) => boolean = () => true, limit = Infinity): LongestPrefix {
    let deepest: { tokens: number; holders: Set<string> } | undefined;
    let previous = scopeSeed(scope);
    for (let end = this.blockTokens; end <= tokens.length; end += this.blockTokens) {
      previous = blockHash(previous, tokens, end - this.blockTokens, end);
      const holders = this.holders.get(previous);
      if (holders === undefined || !someOf(holders, usable)) break;
      deepest = { tokens: end, holders };
    }
    if (deepest === undefined) return { tokens: 0, agents: [], holders: new Set() };
    const agents: string[] = [];
    for (const agentId of deepest.holders) if (agents.length < limit && usable(agentId)) agents.push(agentId);
    return { tokens: deepest.tokens, agents, holders: deepest.holders };
  }
}

/**
 * Partners a new segment weighs (ram-segments.ts, disk-segments.ts): all hold the deepest common
 * block and differ by less than a block past it, so a few suffice, and thousands may hold it.
 */
export const PARTNER_CANDIDATES = 8;

export interface LongestPrefix {
  tokens: number;
  agents: string[];
  holders: ReadonlySet<string>;
}

function someOf(agents: Set<string>, usable: (agentId: string) => boolean): boolean {
  for (const agentId of agents) if (usable(agentId)) return true;
  return false;
}
