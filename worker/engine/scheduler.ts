/**
 * Builds one step's batch: the next token of every generating sequence first (so streams keep
 * flowing), then prefill chunks of waiting prompts, in admission order, under a token budget. A long
 * prompt is therefore cut into chunks and other sequences keep decoding while it prefills.
 */
import type { Batch } from './addon.js';

export interface SchedulableSequence {
  readonly seqId: number;
  readonly phase: 'restoring' | 'prefill' | 'generate' | 'finished';
  readonly prompt: Int32Array;
  readonly prefilled: number;
  readonly pendingToken: number;
  readonly nextPosition: number;
}

export interface StepPlan<S extends SchedulableSequence> {
  batch: Batch;
  /** Sequences that get a sampled token from this step, with the batch index of their logits. */
  samples: { index: number; sequence: S }[];
  /** Prompt tokens each prefilling sequence advances by. */
  prefill: { sequence: S; tokens: number }[];
  /** Distinct sequences in the batch. */
  sequenceCount: number;
}

export function planStep<S extends SchedulableSequence>(sequences: readonly S[], tokenBudget: number): StepPlan<S> | null {
  const tokens: number[] = [];
  const positions: number[] = [];
  const seqIds: number[] = [];
  const logits: number[] = [];
  const samples: StepPlan<S>['samples'] = [];
  const prefill: StepPlan<S>['prefill'] = [];
  const push = (token: number, position: number, seqId: number, wantLogits: boolean): void => {
    tokens.push(token);
    positions.push(position);
    seqIds.push(seqId);
    logits.push(wantLogits ? 1 : 0);
  };
  for (const sequence of sequences) {
    if (sequence.phase !== 'generate' || tokens.length >= tokenBudget) continue;
    samples.push({ index: tokens.length, sequence });
    push(sequence.pendingToken, sequence.nextPosition, sequence.seqId, true);
  }
  for (const sequence of sequences) {
    const room = tokenBudget - tokens.length;
    if (sequence.phase !== 'prefill' || room <= 0) continue;
    const chunk = Math.min(room, sequence.prompt.length - sequence.prefilled);
    for (let i = 0; i < chunk; i++) {
      const at = sequence.prefilled + i;
      const last = at === sequence.prompt.length - 1;
      if (last) samples.push({ index: tokens.length, sequence });
      push(sequence.prompt[at] ?? 0, at, sequence.seqId, last);
    }
    prefill.push({ sequence, tokens: chunk });
  }
  if (tokens.length === 0) return null;
  return {
    batch: {
      tokens: Int32Array.from(tokens),
      positions: Int32Array.from(positions),
      seqIds: Int32Array.from(seqIds),
      logits: Uint8Array.from(logits),
    },
    samples,
    prefill,
    sequenceCount: new Set(seqIds).size,
  };
}

/** Adds a decoded step to the engine's counts (EngineStats: steps, sampled tokens, steps of several sequences). */
export function countStep(counts: { steps: number; sampledTokens: number; multiSequenceSteps: number }, plan: StepPlan<SchedulableSequence>): void {
  counts.steps++;
  counts.sampledTokens += plan.samples.length;
  if (plan.sequenceCount > 1) counts.multiSequenceSteps++;
}
