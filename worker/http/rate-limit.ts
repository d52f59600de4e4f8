/**
 * Token buckets, one per caller (an API key, or an agent): each holds up to `burst` requests and
 * refills at `perMinute` requests per minute, so a caller may send a burst and then its rate. A
 * request that finds its bucket empty is refused with 429 and a Retry-After that says when the next
 * token arrives. 0 requests per minute turns the limiter off.
 *
 * Memory: a bucket that would be full by now says nothing a fresh bucket would not, so full buckets
 * are dropped every so often; the map holds only callers active within the last burst's refill time.
 */
import { performance } from 'node:perf_hooks';
import { ErrorCode, SemanticError } from '../../shared/errors.js';

/**
 * Called with a request's agent once the route resolved it: throws ERR_RATE_LIMITED when over the
 * agent's rate, and returns the request's prefix-sharing scope (undefined: sharing off; see
 * GenerateMessage.shareScope).
 */
export type AgentGate = (agentId: string, headers: ReadonlyMap<string, string>) => string | undefined;

/** No agent limit, and every request in one sharing scope (a server without API keys). */
export const noAgentLimit: AgentGate = () => '*';

interface Bucket {
  tokens: number;
  /** When `tokens` was last brought up to date, in ms. */
  at: number;
}

const PRUNE_EVERY = 1024;

export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>();
  private takes = 0;

  constructor(
    private readonly perMinute: number,
    private readonly burst: number,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** Takes a request's token from `caller`'s bucket; 0 when allowed, else the seconds until one is there. */
  take(caller: string): number {
    if (this.perMinute === 0) return 0;
    const now = this.now();
    if (++this.takes % PRUNE_EVERY === 0) this.prune(now);
    const bucket = this.refilled(this.buckets.get(caller), now);
    this.buckets.set(caller, bucket);
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return 0;
    }
    return Math.ceil((1 - bucket.tokens) / this.perMs / 1000);
  }

  /** Throws ERR_RATE_LIMITED (429 + Retry-After) when `caller` is over its rate. */
  check(caller: string, what: string): void {
    const wait = this.take(caller);
    if (wait > 0) throw new SemanticError(ErrorCode.RateLimited, `Rate limit reached for this ${what}: retry in ${wait} s.`, { retryAfter: wait });
  }

  get size(): number {
    return this.buckets.size;
  }

  private get perMs(): number {
    return this.perMinute / 60_000;
  }

  private refilled(bucket: Bucket | undefined, now: number): Bucket {
    if (bucket === undefined) return { tokens: this.burst, at: now };
    return { tokens: Math.min(this.burst, bucket.tokens + (now - bucket.at) * this.perMs), at: now };
  }

  private prune(now: number): void {
    for (const [caller, bucket] of this.buckets) {
      if (this.refilled(bucket, now).tokens >= this.burst) this.buckets.delete(caller);
    }
  }
}
