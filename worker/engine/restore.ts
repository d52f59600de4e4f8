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
  /** The request starts: posted once its state is imported (or found missing). */
  started(sequence: Sequence, tier: CacheTier): void;
}

/** Imports saved states into the sequences started for returning agents, keeping the common prefix. */
export async function restoreSaved(sequences: Iterable<Sequence>, deps: RestoreDeps): Promise<void> {
  for (const sequence of sequences) {
    if (sequence.phase !== 'restoring' || sequence.restore === undefined) continue;
    const { tier, load } = sequence.restore;
    sequence.restore = undefined;
    const reused = await importSaved(sequence, load, deps).catch(() => 0);
    if (reused === 0) deps.context.seqRemove(sequence.seqId);
    if (sequence.phase === 'restoring') sequence.phase = 'prefill';
    deps.started(sequence, reused > 0 ? tier : 'miss');
  }
}

/**
 * A saved state longer than the request's reservation is imported only if its blocks can grow to
 * hold it for a moment: the cells past the common prefix are dropped right after the import.
 */
async function importSaved(sequence: Sequence, load: () => Promise<SavedState | null>, { context, admission }: RestoreDeps): Promise<number> {
  const saved = await load();
  if (saved === null) return 0;
  const { tokens: reusable, logits } = reusablePrefix(saved, sequence.prompt);
  if (reusable === 0) return 0;
  const reserved = sequence.reservation.tokens;
  if (saved.tokens.length > reserved && !admission.resize(sequence.reservation, saved.tokens.length)) return 0;
  try {
    await saved.importInto(sequence.seqId);
  } finally {
    context.seqRemove(sequence.seqId, reusable, -1);
    admission.resize(sequence.reservation, reserved);
  }
  sequence.reuse(reusable, logits);
  return reusable;
}
