/**
 * Where a starting request's cached prefix comes from, with its sequence's cells set up for it. A
 * returning agent whose cells are still in the context keeps the longest common prefix of its cached
 * tokens and its new prompt (reusablePrefix) and prefills only the rest — unless another agent of its
 * sharing scope has a longer prefix cached (shared-prefix.ts). Everyone else starts as a miss, and
 * the engine then looks for the agent's own saved state.
 */
import type { Context } from './addon.js';
import { reusablePrefix, type HotEntry } from './kv/hot-cache.js';
import type { SharedPrefix, SharedPrefixes } from './kv/shared-prefix.js';
import type { RestoreSource } from './kv/tiers.js';
import type { CacheTier, GenerateMessage, SharedFrom } from '../../shared/protocol/messages.js';

export interface CacheStart {
  cachedTokens: number;
  cacheTier: CacheTier;
  /** The logits after the cached tokens, when they are the whole prompt's. */
  logits?: Float32Array | undefined;
  /** Another agent's saved state to import before the first prefill. */
  restore?: RestoreSource;
  sharedFrom?: SharedFrom;
}

export function cacheStart(
  context: Pick<Context, 'seqRemove' | 'seqCopy'>,
  shared: SharedPrefixes,
  prepared: { request: Pick<GenerateMessage, 'agentId' | 'shareScope'>; prompt: Int32Array; hot: HotEntry | undefined },
  seqId: number,
): CacheStart {
  const { request, prompt, hot } = prepared;
  const kept = hot === undefined ? undefined : reusablePrefix(hot, prompt);
  const other = shared.best(request.agentId, request.shareScope, prompt, kept?.tokens ?? 0);
  if (other !== undefined) return startShared(context, other, seqId);
  if (hot === undefined || kept === undefined) return { cachedTokens: 0, cacheTier: 'miss' };
  context.seqRemove(hot.seqId, kept.tokens, -1);
  return { cachedTokens: kept.tokens, cacheTier: kept.tokens > 0 ? 'hot' : 'miss', logits: kept.logits };
}

/**
 * Another agent's prefix replaces whatever the request's sequence held: cells in the context join
 * the sequence at once (no data is copied), a saved state is imported before its first prefill.
 */
function startShared(context: Pick<Context, 'seqRemove' | 'seqCopy'>, shared: SharedPrefix, seqId: number): CacheStart {
  context.seqRemove(seqId);
  if (shared.kind === 'saved') return { cachedTokens: 0, cacheTier: 'miss', restore: shared.restore };
  context.seqCopy(shared.seqId, seqId, 0, shared.tokens);
  return { cachedTokens: shared.tokens, cacheTier: 'shared', logits: shared.logits, sharedFrom: shared.from };
}
