/**
 * One admitted request bound to one llama.cpp sequence id: its prompt, how far prefill got, what it
 * generated, and its sampler. The engine owns the lifecycle; the scheduler only reads `phase` and
 * positions.
 */
import type { Sampler } from './addon.js';
import type { Reservation } from './admission.js';
import type { CacheTier, FinishReason, GenerateMessage } from '../../shared/protocol/messages.js';
import { TextStream } from './text-stream.js';
import type { RestoreSource } from './kv/tiers.js';
import { worthWriting } from './kv/write-behind.js';

/** `restoring`: waiting for its agent's saved state to be imported before its first prefill. */
export type SequencePhase = 'restoring' | 'prefill' | 'generate' | 'finished';

export class Sequence {
  phase: SequencePhase = 'prefill';
  /** Prompt tokens already in the KV cache. */
  prefilled = 0;
  /** Generated tokens so far (the last one is not yet in the KV cache). */
  generated = 0;
  /** The generated tokens themselves: with the prompt, what the KV cache holds for the agent's next turn. */
  readonly output: number[] = [];
  /** The token sampled last, to be fed at position `nextPosition` in the next step. */
  pendingToken = -1;
  aborted = false;
  /** Ended unfinished by a drain's deadline: answered ERR_DRAINING, not as an abort. */
  cut = false;
  finishReason: FinishReason | undefined;
  /** The cached logits that followed the whole prompt: the first token is sampled from them, with no decode. */
  savedLogits: Float32Array | undefined;
  /**
   * The logits after the last token in the KV cache when the turn ended (empty: unknown, e.g. aborted).
   * Kept with the agent's cache in every tier, so that the same prompt again needs no decode.
   */
  finalLogits: Float32Array = new Float32Array(0);
  /** Where the agent's saved state comes from (the RAM or disk tier), imported before its first prefill. */
  restore: RestoreSource | undefined;
  /** Where its cached prefix came from, once started: its agent's own cache (hot, RAM, disk) says the conversation came back. */
  cacheTier: CacheTier = 'miss';
  readonly text: TextStream;

  constructor(
    readonly request: GenerateMessage,
    readonly prompt: Int32Array,
    readonly sampler: Sampler,
    /** The sequence id and the KV cells reserved for it: prompt + max tokens. */
    readonly reservation: Reservation,
    /** Prompt tokens reused from the agent's cache, already in the KV cache. */
    private reused: number,
  ) {
    this.text = new TextStream(request.stop);
    this.prefilled = reused;
  }

  get cachedTokens(): number {
    return this.reused;
  }

  /**
   * With tools, control tokens are part of the output: Llama 3's `<|python_tag|>` and Mistral's
   * `[TOOL_CALLS]` / `[ARGS]` mark calls (worker/tools/tool-calls.ts), as llama-server keeps them for
   * its parsers. Without tools they are dropped, as before.
   */
  get rendersSpecialTokens(): boolean {
    const { input } = this.request;
    return input.kind === 'chat' && (input.tools?.length ?? 0) > 0;
  }

  /** The first `tokens` prompt tokens are in the KV cache (imported state), so prefill starts after them. */
  reuse(tokens: number, logits?: Float32Array): void {
    this.reused = tokens;
    this.prefilled = tokens;
    this.savedLogits = logits;
  }

  /** Whether the turn, `held` tokens long, is worth a cache file (write-behind.ts worthWriting). */
  worthWriting(held: number): boolean {
    const returned = this.cacheTier !== 'miss' && this.cacheTier !== 'shared';
    return worthWriting({ derived: this.request.agentIdDerived === true, returned, tokens: held });
  }

  get agentId(): string {
    return this.request.agentId;
  }

  get seqId(): number {
    return this.reservation.seqId;
  }

  get requestId(): string {
    return this.request.requestId;
  }

  /** Position of the next token to decode: prompt, then generated tokens already fed back. */
  get nextPosition(): number {
    return this.phase === 'prefill' ? this.prefilled : this.prompt.length + this.generated - 1;
  }

  get remainingPrompt(): number {
    return this.prompt.length - this.prefilled;
  }

  /** Cells this sequence occupies in the KV cache now. */
  get usedCells(): number {
    return this.phase === 'prefill' ? this.prefilled : this.prompt.length + Math.max(0, this.generated - 1);
  }
}

/** The agent's sequence among those running, if any (no array built: prefix sharing asks per candidate). */
export function runningSequenceOf(active: Iterable<Sequence>, agentId: string): Sequence | undefined {
  for (const sequence of active) if (sequence.agentId === agentId) return sequence;
  return undefined;
}
