/**
 * Shared prefixes of the disk tier, stored once: a segment file (segments/<name>.safetensors) holds
 * the cells at positions [0, n) that several agents' files of one sharing scope hold alike, and each
 * of those files keeps only its own cells from n on, naming the segment in its header. As in the RAM
 * tier (worker/engine/kv/ram-segments.ts), a segment is named by the chained hash of its tokens, n is
 * a whole number of index blocks, and it goes with the last file that uses it.
 *
 * This is the bookkeeping on the inference thread; the piscina thread cuts states and writes the
 * files (cache-task.ts). Which files use a segment is known from the writes since startup and from
 * the headers read at startup; a segment no known file uses is deleted.
 */
import { commonPrefixLength } from '../engine/kv/hot-cache.js';
import { PARTNER_CANDIDATES, PrefixIndex } from '../engine/kv/prefix-index.js';

export interface DiskSegment {
  name: string;
  key: number;
  scope: string;
  tokens: Int32Array;
  /** Bytes of its file, once written or found (0 before). */
  bytes: number;
  users: Set<string>;
  /** Writes planned onto it and not settled yet: it is not deleted under them. */
  pending: number;
}

/** Where a new file's first cells go: a segment (made from this state if its file is missing), and an older file to move onto it. */
export interface SegmentPlan {
  segment: DiskSegment;
  /** A file of the same scope without a segment that opens with the same tokens: rewritten to its suffix. */
  partner?: string;
}

export class DiskSegments {
  private readonly byName = new Map<string, DiskSegment>();
  private readonly ofAgent = new Map<string, DiskSegment>();
  /** Files of a scope on no segment, by their tokens: partners for a new one. */
  private readonly loose: PrefixIndex;

  constructor(
    private readonly blockTokens = 16,
    private readonly minShared = 4 * blockTokens,
    /** Deletes a segment's file once no file uses it. */
    private readonly deleteFile: (name: string) => void = () => undefined,
  ) {
    this.loose = new PrefixIndex(blockTokens);
  }

  /** Bytes of every segment file (counted once against the disk budget). */
  get bytes(): number {
    let total = 0;
    for (const segment of this.byName.values()) total += segment.bytes;
    return total;
  }

  get count(): number {
    return this.byName.size;
  }

  segmentOf(agentId: string): DiskSegment | undefined {
    return this.ofAgent.get(agentId);
  }

  /**
   * Where the first cells of the agent's next file should go, if anywhere. Each write (and the
   * partner's rewrite) planned onto a segment must be `settled` once done, whatever its outcome.
   */
  plan(agentId: string, scope: string | undefined, tokens: Int32Array): SegmentPlan | undefined {
    if (scope === undefined) return undefined;
    const chain = this.loose.chain(scope, tokens);
    const existing = this.deepestExisting(scope, tokens, chain);
    if (existing !== undefined) {
      existing.pending++;
      return { segment: existing };
    }
    const partner = this.partnerFor(agentId, scope, tokens);
    if (partner === undefined) return undefined;
    const segment = this.register(chain[partner.length / this.blockTokens - 1] as number, scope, tokens.slice(0, partner.length));
    segment.pending += 2;
    return { segment, partner: partner.agentId };
  }

  /** A write planned onto the segment is done (fileWritten was told where it went). */
  settled(segment: DiskSegment): void {
    segment.pending--;
    this.dropIfUnused(segment);
  }

  /** The agent's file now holds these tokens, on `segment` (with its file's bytes) or on none. */
  fileWritten(agentId: string, scope: string | undefined, tokens: ArrayLike<number>, segment?: { name: string; bytes: number }): void {
    this.fileGone(agentId);
    if (segment === undefined) {
      if (scope !== undefined) this.loose.set(agentId, scope, tokens);
      return;
    }
    const known = this.byName.get(segment.name) ?? this.adopt(segment.name, scope ?? '', tokens);
    known.bytes = segment.bytes;
    known.users.add(agentId);
    this.ofAgent.set(agentId, known);
  }

  /** The agent's file was deleted or quarantined: its segment loses a user, and goes with its last. */
  fileGone(agentId: string): void {
    this.loose.remove(agentId);
    const segment = this.ofAgent.get(agentId);
    if (segment === undefined) return;
    this.ofAgent.delete(agentId);
    segment.users.delete(agentId);
    this.dropIfUnused(segment);
  }

  /** A segment no file uses and no write is planned onto goes, with its file. */
  private dropIfUnused(segment: DiskSegment): void {
    if (segment.users.size > 0 || segment.pending > 0 || this.byName.get(segment.name) !== segment) return;
    this.byName.delete(segment.name);
    this.deleteFile(segment.name);
  }

  /** Whether a segment file found on disk belongs to no file known here (safe to delete). */
  isOrphan(name: string): boolean {
    return !this.byName.has(name);
  }

  private deepestExisting(scope: string, tokens: Int32Array, chain: number[]): DiskSegment | undefined {
    for (let blocks = Math.min(chain.length, Math.floor((tokens.length - 1) / this.blockTokens)); blocks * this.blockTokens >= this.minShared; blocks--) {
      const found = this.byName.get(segmentName(chain[blocks - 1] as number, blocks * this.blockTokens));
      if (found !== undefined && found.scope === scope && commonPrefixLength(found.tokens, tokens) >= found.tokens.length) return found;
    }
    return undefined;
  }

  private partnerFor(agentId: string, scope: string, tokens: Int32Array): { agentId: string; length: number } | undefined {
    const found = this.loose.longest(scope, tokens, (id) => id !== agentId, PARTNER_CANDIDATES);
    let best: { agentId: string; length: number } | undefined;
    for (const id of found.tokens >= this.minShared ? found.agents : []) {
      const theirs = this.loose.tokensOf(id);
      const shared = Math.min(commonPrefixLength(theirs, tokens), tokens.length - 1, theirs.length - 1);
      const length = Math.floor(shared / this.blockTokens) * this.blockTokens;
      if (length >= this.minShared && (best === undefined || length > best.length)) best = { agentId: id, length };
    }
    return best;
  }

  private register(key: number, scope: string, tokens: Int32Array): DiskSegment {
    const name = segmentName(key, tokens.length);
    const segment: DiskSegment = { name, key, scope, tokens, bytes: 0, users: new Set(), pending: 0 };
    this.byName.set(name, segment);
    return segment;
  }

  /** A segment learnt from a file's header after a restart: its tokens are the file's first ones. */
  private adopt(name: string, scope: string, tokens: ArrayLike<number>): DiskSegment {
    const length = Number(name.split('-')[1]);
    const key = parseInt(name.split('-')[0] ?? '', 16);
    const segment: DiskSegment = { name, key, scope, tokens: Int32Array.from({ length }, (_, i) => tokens[i] as number), bytes: 0, users: new Set(), pending: 0 };
    this.byName.set(name, segment);
    return segment;
  }
}

/** Content-addressed: the chained hash of the segment's tokens (scope-seeded) and how many there are. */
export function segmentName(key: number, tokens: number): string {
  return `${key.toString(16)}-${tokens}`;
}
