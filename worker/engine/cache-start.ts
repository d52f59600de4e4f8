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

/** What a starting request will reuse: another agent's prefix, its own hot cells (kept: a prefix of them), or nothing. */
export type StartPlan = { kind: 'shared'; shared: SharedPrefix } | { kind: 'own'; hot: HotEntry; kept: { tokens: number; logits?: Float32Array | undefined } } | { kind: 'miss' };

/** Chooses, touching nothing: the engine sizes the request's blocks by it before its cells are set up. */
export function planStart(
  shared: SharedPrefixes,
  prepared: { request: Pick<GenerateMessage, 'agentId' | 'shareScope'>; prompt: Int32Array; hot: HotEntry | undefined },
): StartPlan {
  const { request, prompt, hot } = prepared;
  const kept = hot === undefined ? undefined : reusablePrefix(hot, prompt);
  const other = shared.best(request.agentId, request.shareScope, prompt, kept?.tokens ?? 0);
  if (other !== undefined) return { kind: 'shared', shared: other };
  if (hot === undefined || kept === undefined) return { kind: 'miss' };
  return { kind: 'own', hot, kept };
}

/** The sequence whose cells a plan joins and how many whole blocks of them: the request holds those blocks instead of its own. */
export function sharedBlocksOf(plan: StartPlan, blockSize: number): { seqId: number; blocks: number } | undefined {
  if (plan.kind !== 'shared' || plan.shared.kind !== 'cells') return undefined;
  const blocks = Math.floor(plan.shared.tokens / blockSize);
  return blocks > 0 ? { seqId: plan.shared.seqId, blocks } : undefined;
}

/** Sets the request's sequence `seqId` up as the plan says. */
export function applyStart(context: Pick<Context, 'seqRemove' | 'seqCopy'>, plan: StartPlan, seqId: number): CacheStart {
  if (plan.kind === 'shared') return startShared(context, plan.shared, seqId);
  if (plan.kind === 'miss') return { cachedTokens: 0, cacheTier: 'miss' };
  const { hot, kept } = plan;
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
