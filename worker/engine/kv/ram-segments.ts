/**
 * Shared prefixes of the RAM tier, stored once. A segment is a state blob of the cells at positions
 * [0, n) that several agents' states hold alike (same sharing scope, same first n tokens; identical
 * tokens give identical KV), n a whole number of index blocks. It is named by the chained hash of its
 * tokens (prefix-index.ts), so an agent spilled later finds it with one probe per block, and it is
 * reference-counted: each entry on it keeps only its own cells past n (state-blob.ts cuts them), and
 * the segment goes with its last entry.
 *
 * A segment is made when an entry arrives that opens like one already stored without a segment: the
 * common prefix (whole blocks, at least `minShared` tokens) is cut out of the older entry's state,
 * which keeps only its suffix from then on. Entries sit on one segment at most; a later agent that
 * shares less than a segment holds makes its own, shorter one with an entry that has none.
 */
import { commonPrefixLength } from './hot-cache.js';
import { PARTNER_CANDIDATES, PrefixIndex } from './prefix-index.js';
import type { RamEntry, Segment } from './ram-entry.js';
import { joinStates, StateBlobError, stateCells, statePrefix } from './state-blob.js';

export class RamSegments {
  private readonly byKey = new Map<number, Segment[]>();
  /** Entries of a scope that sit on no segment: partners for a new one. */
  private readonly loose: PrefixIndex;
  private segmentBytes = 0;
  private segments = 0;

  constructor(
    private readonly blockTokens: number,
    private readonly minShared: number,
  ) {
    this.loose = new PrefixIndex(blockTokens);
  }

  get bytes(): number {
    return this.segmentBytes;
  }

  get count(): number {
    return this.segments;
  }

  /**
   * Puts a new entry (its `own` the whole state) on a shared segment if one fits or can be made;
   * `rebase` gives an older entry its suffix when a new segment takes its prefix. True if placed.
   */
  place(entry: RamEntry, entryOf: (agentId: string) => RamEntry | undefined, rebase: (other: RamEntry, own: Uint8Array) => void): boolean {
    const { scope, tokens } = entry;
    if (scope === undefined) return false;
    const chain = this.loose.chain(scope, tokens);
    const segment = this.existing(scope, tokens, chain) ?? this.fromPartner(entry, scope, chain, entryOf, rebase);
    const own = segment === undefined ? undefined : stateCells(entry.own, segment.tokens.length, Infinity);
    if (segment === undefined || own === undefined) {
      this.loose.set(entry.agentId, scope, tokens);
      return false;
    }
    entry.own = own;
    this.attach(entry, segment);
    return true;
  }

  /** The entry leaves the tier; it keeps its segment reference, so a state taken out still joins whole. */
  release(entry: RamEntry): void {
    this.loose.remove(entry.agentId);
    const segment = entry.prefix;
    if (segment === undefined || --segment.refs > 0) return;
    const list = (this.byKey.get(segment.key) ?? []).filter((s) => s !== segment);
    if (list.length === 0) this.byKey.delete(segment.key);
    else this.byKey.set(segment.key, list);
    this.segmentBytes -= segment.state.byteLength;
    this.segments--;
  }

  whole(entry: RamEntry): Uint8Array {
    return entry.prefix === undefined ? entry.own : joinStates(entry.prefix.state, entry.own);
  }

  prefix(entry: RamEntry, keep: number): Uint8Array | undefined {
    const segment = entry.prefix;
    if (segment !== undefined && keep <= segment.tokens.length) return statePrefix(segment.state, keep);
    try {
      return statePrefix(this.whole(entry), keep);
    } catch (error) {
      if (error instanceof StateBlobError) return undefined;
      throw error;
    }
  }

  /** The deepest stored segment of the scope that the tokens open with, leaving at least one cell of their own. */
  private existing(scope: string, tokens: Int32Array, chain: number[]): Segment | undefined {
    const most = Math.min(chain.length, Math.floor((tokens.length - 1) / this.blockTokens));
    for (let blocks = most; blocks * this.blockTokens >= this.minShared; blocks--) {
      const length = blocks * this.blockTokens;
      const found = this.byKey.get(chain[blocks - 1] as number)?.find((s) => s.scope === scope && s.tokens.length === length && commonPrefixLength(s.tokens, tokens) >= length);
      if (found !== undefined) return found;
    }
    return undefined;
  }

  /** A new segment from the longest whole-block prefix the entry shares with a loose entry of its scope. */
  private fromPartner(
    entry: RamEntry,
    scope: string,
    chain: number[],
    entryOf: (agentId: string) => RamEntry | undefined,
    rebase: (other: RamEntry, own: Uint8Array) => void,
  ): Segment | undefined {
    const found = this.loose.longest(scope, entry.tokens, (id) => id !== entry.agentId, PARTNER_CANDIDATES);
    if (found.tokens < this.minShared) return undefined;
    let best: { other: RamEntry; length: number } | undefined;
    for (const id of found.agents) {
      const other = entryOf(id);
      if (other === undefined) continue;
      const shared = Math.min(commonPrefixLength(other.tokens, entry.tokens), entry.tokens.length - 1, other.tokens.length - 1);
      const length = Math.floor(shared / this.blockTokens) * this.blockTokens;
      if (length >= this.minShared && (best === undefined || length > best.length)) best = { other, length };
    }
    if (best === undefined) return undefined;
    const cut = statePrefix(best.other.own, best.length);
    const otherOwn = stateCells(best.other.own, best.length, Infinity);
    if (cut === undefined || otherOwn === undefined) return undefined;
    const segment: Segment = { key: chain[best.length / this.blockTokens - 1] as number, scope, tokens: entry.tokens.slice(0, best.length), state: cut, refs: 0 };
    this.byKey.set(segment.key, [...(this.byKey.get(segment.key) ?? []), segment]);
    this.segmentBytes += cut.byteLength;
    this.segments++;
    this.loose.remove(best.other.agentId);
    rebase(best.other, otherOwn);
    this.attach(best.other, segment);
    return segment;
  }

  private attach(entry: RamEntry, segment: Segment): void {
    entry.prefix = segment;
    segment.refs++;
  }
}
