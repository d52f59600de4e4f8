/**
 * One admitted request bound to one llama.cpp sequence id: its prompt, how far prefill got, what it
 * generated, and its sampler. The engine drives the lifecycle through this class's methods, the only
 * place the phase changes:
 *
 *   restoring ──restored()──▶ prefill ──accept()──▶ generate ──finish()──▶ finished
 *       └──────────────────────┴──────────finish() / fail()───────────────────▲
 *
 * The scheduler and prefix sharing only read `phase` and positions.
 */
import type { Sampler } from './addon.js';
import type { Reservation } from './admission.js';
import type { CacheTier, FinishReason, GenerateMessage, Usage } from '../../shared/protocol/messages.js';
import { TextStream } from './text-stream.js';
import type { RestoreSource } from './kv/tiers.js';
import { worthWriting } from './kv/write-behind.js';
import type { ReasoningBudget } from './reasoning-budget.js';

/** `restoring`: waiting for its agent's saved state to be imported before its first prefill. */
export type SequencePhase = 'restoring' | 'prefill' | 'generate' | 'finished';

export class Sequence {
  private current: SequencePhase = 'prefill';
  /** Prompt tokens already in the KV cache. */
  prefilled = 0;
  /** Generated tokens so far (the last one is not yet in the KV cache). */
  generated = 0;
  /** The generated tokens themselves: with the prompt, what the KV cache holds for the agent's next turn. */
  readonly output: number[] = [];
  /** The token sampled last, to be fed at position `nextPosition` in the next step. */
  pendingToken = -1;
  private aborted = false;
  /** Ended unfinished by a drain's deadline: answered ERR_DRAINING, not as an abort. */
  private wasCut = false;
  finishReason: FinishReason | undefined;
  /** The cached logits that followed the whole prompt: the first token is sampled from them, with no decode. */
  private savedLogits: Float32Array | undefined;
  /**
   * The logits after the last token in the KV cache when the turn ended (empty: unknown, e.g. aborted).
   * Kept with the agent's cache in every tier, so that the same prompt again needs no decode.
   */
  finalLogits: Float32Array = new Float32Array(0);
  /** Where the agent's saved state comes from (the RAM or disk tier), imported before its first prefill. */
  private restore: RestoreSource | undefined;
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
    /** The logits after the cached prompt, when the whole prompt is cached (see `takeSavedLogits`). */
    savedLogits?: Float32Array,
    /** Its think block, followed and bounded: none when the output starts at the answer. */
    readonly reasoning?: ReasoningBudget,
  ) {
    this.text = new TextStream(request.stop);
    this.prefilled = reused;
    this.savedLogits = savedLogits;
  }

  get phase(): SequencePhase {
    return this.current;
  }

  /** Its agent's saved state is imported (restore.ts) before its first prefill. */
  awaitRestore(source: RestoreSource): void {
    this.current = 'restoring';
    this.restore = source;
  }

  /** The saved state to import now, once: undefined unless the sequence is waiting for one. */
  takeRestore(): RestoreSource | undefined {
    const source = this.current === 'restoring' ? this.restore : undefined;
    this.restore = undefined;
    return source;
  }

  /** The import ended (or failed: a miss): prefill starts, unless the request ended meanwhile. */
  restored(): void {
    if (this.current === 'restoring') this.current = 'prefill';
  }

  /**
   * Saved logits follow the whole cached prompt: a prefilling sequence samples its first token from
   * them with no decode. Taken once; they are also the logits its turn ends with if it ends there.
   */
  takeSavedLogits(): Float32Array | undefined {
    const logits = this.savedLogits;
    if (logits === undefined || this.current !== 'prefill') return undefined;
    this.savedLogits = undefined;
    this.finalLogits = logits;
    return logits;
  }

  /** A sampled token arrived: generation goes on (false: the request had already ended). */
  startGenerating(): boolean {
    if (this.current === 'finished') return false;
    this.current = 'generate';
    return true;
  }

  /** The token to take in place of the one sampled: itself, or a token closing a think block whose budget is spent. */
  steer(sampled: number): number {
    return this.reasoning?.steer(sampled) ?? sampled;
  }

  /** Takes a sampled token that is not an end token; returns the text it completes (held back while a stop string may start). */
  append(token: number, piece: Uint8Array): string {
    this.generated++;
    this.output.push(token);
    this.pendingToken = token;
    const text = this.text.push(piece);
    this.reasoning?.observe(text);
    return text;
  }

  get reachedMaxTokens(): boolean {
    return this.generated >= (this.request.maxTokens ?? Infinity);
  }

  /** Ends the request (idempotent): false if it had already ended. */
  finish(reason: FinishReason): boolean {
    if (this.current === 'finished') return false;
    this.current = 'finished';
    this.finishReason = reason;
    return true;
  }

  /** The client aborted it (idempotent): false if it was aborted before. Freed at the next step boundary. */
  abort(): boolean {
    if (this.aborted) return false;
    this.aborted = true;
    this.finish('abort');
    return true;
  }

  /** The drain's deadline passed: a request still running ends now, as an abort answered ERR_DRAINING. False if it had ended. */
  cutShort(): boolean {
    if (this.current === 'finished') return false;
    this.wasCut = true;
    this.finish('abort');
    return true;
  }

  get cut(): boolean {
    return this.wasCut;
  }

  /** Its decode failed: it ends with no finish reason, answered `failed` by the engine. */
  fail(): void {
    this.current = 'finished';
  }

  get cachedTokens(): number {
    return this.reused;
  }

  /** What its `done` reports; reasoning tokens only where the output started in or before a think block. */
  get usage(): Usage {
    const usage = { promptTokens: this.prompt.length, completionTokens: this.generated, cachedTokens: this.reused };
    return this.reasoning === undefined ? usage : { ...usage, reasoningTokens: this.reasoning.tokens };
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
    return this.current === 'prefill' ? this.prefilled : this.prompt.length + this.generated - 1;
  }

  get remainingPrompt(): number {
    return this.prompt.length - this.prefilled;
  }

  /** Cells this sequence occupies in the KV cache now. */
  get usedCells(): number {
    return this.current === 'prefill' ? this.prefilled : this.prompt.length + Math.max(0, this.generated - 1);
  }
}

/** The agent's sequence among those running, if any (no array built: prefix sharing asks per candidate). */
export function runningSequenceOf(active: Iterable<Sequence>, agentId: string): Sequence | undefined {
  for (const sequence of active) if (sequence.agentId === agentId) return sequence;
  return undefined;
}
