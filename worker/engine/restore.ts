/**
 * A returning agent whose cache left the context (RAM or disk tier) gets a fresh sequence; between
 * steps its saved state is imported into it, and only the longest common prefix with the new prompt
 * is kept (hot-cache.ts `reusablePrefix`). A state that cannot be loaded or imported makes the turn a
 * miss, prefilled from scratch: never a wrong answer.
 */
import type { Context } from './addon.js';
import type { Admission } from './admission.js';
import { reusablePrefix } from './kv/hot-cache.js';
import type { SavedState } from './kv/tiers.js';
import type { Sequence } from './sequence.js';
import type { CacheTier } from '../../shared/protocol/messages.js';

export interface RestoreDeps {
  context: Context;
  admission: Pick<Admission<unknown>, 'resize'>;
  /** The request starts: posted once its state is imported (or found missing); `sharedFrom`: another agent's tier. */
  started(sequence: Sequence, tier: CacheTier, sharedFrom?: 'ram' | 'disk'): void;
  /** A saved state was imported (metrics): from which tier, begun when (performance.now()). */
  restored?(tier: 'ram' | 'disk', startedMs: number): void;
}

/** Imports saved states into the sequences started for returning agents, keeping the common prefix. */
export async function restoreSaved(sequences: Iterable<Sequence>, deps: RestoreDeps): Promise<void> {
  for (const sequence of sequences) {
    const source = sequence.takeRestore();
    if (source === undefined) continue;
    const { tier, load, shared } = source;
    const begun = performance.now();
    const reused = await importSaved(sequence, load, deps).catch(() => 0);
    if (reused > 0) deps.restored?.(tier, begun);
    if (reused === 0) deps.context.seqRemove(sequence.seqId);
    sequence.restored();
    if (reused === 0) deps.started(sequence, 'miss');
    else if (shared === true) deps.started(sequence, 'shared', tier);
    else deps.started(sequence, tier);
  }
}

/**
 * A saved state longer than the request's reservation (another agent's long history, say) is cut to
 * the common prefix before it is imported; one that cannot be cut is imported whole only if the
 * request's blocks can grow to hold it for a moment, and the cells past the prefix are dropped right
 * after the import.
 */
async function importSaved(sequence: Sequence, load: () => Promise<SavedState | null>, { context, admission }: RestoreDeps): Promise<number> {
  const saved = await load();
  if (saved === null) return 0;
  const { tokens: reusable, logits } = reusablePrefix(saved, sequence.prompt);
  if (reusable === 0) return 0;
  const reserved = sequence.reservation.tokens;
  const tooLong = saved.tokens.length > reserved;
  if (tooLong && (await saved.importPrefix(sequence.seqId, reusable))) {
    sequence.reuse(reusable, logits);
    return reusable;
  }
  if (tooLong && !admission.resize(sequence.reservation, saved.tokens.length)) return 0;
  try {
    await saved.importInto(sequence.seqId);
  } finally {
    context.seqRemove(sequence.seqId, reusable, -1);
    admission.resize(sequence.reservation, reserved);
  }
  sequence.reuse(reusable, logits);
  return reusable;
}
