/**
 * A batched decode that failed for a reason other than KV room (llama.cpp refused the input, or its
 * compute failed) used to kill the engine, and with it every request in the batch. The failure is
 * usually one sequence's: its input, or its part of the graph. So every sequence's cells from the
 * failed step are removed (llama.cpp keeps the micro-batches it finished before the failure), each
 * sequence's part is decoded alone, without sampling, to find the ones that fail alone, and those
 * parts are removed again; then the batch is decoded once more without the failing sequences, with
 * its samplers, exactly as it would have been. The survivors' tokens are the ones the failed step
 * would have given them. If every sequence fails alone, or the retry fails, the context itself is
 * broken and the engine dies as before.
 *
 * Only the failure path pays for it: one decode per sequence of the failed step, then one batched.
 * A failure inside sampling (after the decode) is not probed: sampling is skipped while probing,
 * so the retry fails the same way and the engine dies.
 */
import type { Batch, Context, Sampler } from './addon.js';
import type { SchedulableSequence, StepPlan } from './scheduler.js';

type Decodable = SchedulableSequence & { readonly sampler: Sampler };

export interface Retried<S extends Decodable> {
  /** The step without the failing sequences (batch indices renumbered); the context's logits are this batch's. */
  plan: StepPlan<S>;
  sampled: Int32Array;
  /** Sequences whose part failed alone, with their error; none of their cells from this step are left. */
  failed: { sequence: S; error: unknown }[];
}

/** Each sequence of the plan with the batch indices of its tokens. */
function partsOf<S extends Decodable>(plan: StepPlan<S>): Map<S, number[]> {
  const bySeqId = new Map<number, S>();
  for (const { sequence } of [...plan.samples, ...plan.prefill]) bySeqId.set(sequence.seqId, sequence);
  const parts = new Map<S, number[]>();
  plan.batch.seqIds.forEach((seqId, index) => {
    const sequence = bySeqId.get(seqId) as S;
    parts.set(sequence, [...(parts.get(sequence) ?? []), index]);
  });
  return parts;
}

function subBatch(batch: Batch, indices: readonly number[]): Batch {
  return {
    tokens: Int32Array.from(indices, (i) => batch.tokens[i] as number),
    positions: Int32Array.from(indices, (i) => batch.positions[i] as number),
    seqIds: Int32Array.from(indices, (i) => batch.seqIds[i] as number),
    logits: Uint8Array.from(indices, (i) => batch.logits[i] as number),
  };
}

/** Removes the sequence's cells at this step's positions and after; false if llama.cpp cannot. */
function rollBack(context: Pick<Context, 'seqRemove'>, batch: Batch, indices: readonly number[]): boolean {
  const from = Math.min(...indices.map((i) => batch.positions[i] as number));
  return context.seqRemove(batch.seqIds[indices[0] as number] as number, from, -1);
}

/** The plan without the given sequences: their tokens gone, the others' sample indices renumbered. */
export function planWithout<S extends Decodable>(plan: StepPlan<S>, dropped: ReadonlySet<S>, parts: Map<S, number[]>): StepPlan<S> {
  const kept = [...parts]
    .filter(([sequence]) => !dropped.has(sequence))
    .flatMap(([, indices]) => indices)
    .sort((a, b) => a - b);
  const renumbered = new Map(kept.map((index, at) => [index, at]));
  return {
    batch: subBatch(plan.batch, kept),
    samples: plan.samples.filter(({ sequence }) => !dropped.has(sequence)).map(({ index, sequence }) => ({ index: renumbered.get(index) as number, sequence })),
    prefill: plan.prefill.filter(({ sequence }) => !dropped.has(sequence)),
    sequenceCount: parts.size - dropped.size,
  };
}

/** Decodes each sequence's part alone, rolled back after; the sequences whose part failed, with why. */
async function probeAlone<S extends Decodable>(context: Pick<Context, 'decode' | 'seqRemove'>, batch: Batch, parts: Map<S, number[]>): Promise<Map<S, unknown> | undefined> {
  const failed = new Map<S, unknown>();
  for (const [sequence, indices] of parts) {
    await context.decode(subBatch(batch, indices)).catch((error: unknown) => failed.set(sequence, error));
    if (!rollBack(context, batch, indices)) return undefined;
  }
  return failed;
}

/** Undefined: the context is broken (every sequence fails alone, or the retry fails): the engine must die. */
export async function retryWithoutFailing<S extends Decodable>(context: Pick<Context, 'decode' | 'seqRemove'>, plan: StepPlan<S>): Promise<Retried<S> | undefined> {
  const parts = partsOf(plan);
  for (const indices of parts.values()) if (!rollBack(context, plan.batch, indices)) return undefined;
  const failed = await probeAlone(context, plan.batch, parts);
  if (failed === undefined || failed.size === parts.size) return undefined;
  const retry = planWithout(plan, new Set(failed.keys()), parts);
  try {
    const sampled = await context.decode(
      retry.batch,
      retry.samples.map(({ index, sequence }) => ({ index, sampler: sequence.sampler })),
    );
    return { plan: retry, sampled, failed: [...failed].map(([sequence, error]) => ({ sequence, error })) };
  } catch {
    return undefined;
  }
}
