/**
 * The batch engine on the inference thread: admits requests, runs one batched decode per step for
 * every admitted sequence (continuous batching: requests join and leave between steps), streams text
 * back, and frees each sequence's KV cells the moment its request ends or is aborted.
 */
import type { Addon, Context, Model } from './addon.js';
import { Admission, type Reservation } from './admission.js';
import { ChatTemplate } from './chat-template.js';
import { planStep, type StepPlan } from './scheduler.js';
import { Sequence } from './sequence.js';
import { BadRequestError, ContextExceededError, ErrorCode, SemanticError, toErrorPayload } from '../../shared/errors.js';
import type { EngineStats, FinishReason, GenerateMessage, InferenceToFront } from '../../shared/protocol/messages.js';

export interface EngineSettings {
  contextSize: number;
  maxSequences: number;
  batchTokens: number;
  /** Requests waiting for a sequence at most; more are refused with 429. */
  maxQueued: number;
  /** Generation cap when a request names no max tokens. */
  defaultMaxTokens: number;
}

interface Prepared {
  request: GenerateMessage;
  prompt: Int32Array;
  maxTokens: number;
}

export class Engine {
  private readonly active = new Map<string, Sequence>();
  private readonly admission: Admission<Prepared>;
  private readonly template: ChatTemplate;
  private decoding = false;
  private looping = false;
  private dead = false;
  private steps = 0;
  private multiSequenceSteps = 0;

  constructor(
    private readonly addon: Addon,
    private readonly model: Model,
    private readonly context: Context,
    private readonly settings: EngineSettings,
    private readonly post: (message: InferenceToFront) => void,
  ) {
    this.admission = new Admission(settings.maxSequences, settings.contextSize, settings.maxQueued);
    const info = model.info();
    const piece = (token: number): string => (token < 0 ? '' : model.detokenize(Int32Array.of(token), { special: true }));
    this.template = new ChatTemplate(info.chatTemplate, { bos: piece(info.bos), eos: piece(info.eos) });
  }

  submit(request: GenerateMessage): void {
    if (this.dead) return this.fail(request.requestId, new SemanticError(ErrorCode.EngineDead, 'the engine has stopped'));
    let prepared: Prepared;
    try {
      prepared = this.prepare(request);
    } catch (error) {
      return this.fail(request.requestId, error);
    }
    const admitted = this.admission.tryAdmit(prepared, prepared.prompt.length + prepared.maxTokens);
    if (admitted === 'queue-full') {
      return this.fail(request.requestId, new SemanticError(ErrorCode.QueueFull, 'too many requests are waiting', { retryAfter: 1 }));
    }
    if (admitted !== null) this.start(prepared, admitted);
    this.kick();
  }

  /** Idempotent. A running sequence is freed at the next step boundary (at once if no step is running). */
  abort(requestId: string): void {
    const queued = this.admission.removeQueued((p) => p.request.requestId === requestId);
    if (queued !== undefined) return this.postDone(requestId, 'abort', queued.prompt.length, 0);
    const sequence = this.active.get(requestId);
    if (sequence === undefined || sequence.aborted) return;
    sequence.aborted = true;
    this.finish(sequence, 'abort');
    if (!this.decoding) this.reapFinished();
  }

  stats(): EngineStats {
    let usedCells = 0;
    for (const sequence of this.active.values()) usedCells += sequence.usedCells;
    return {
      activeSequences: this.active.size,
      freeSequences: this.admission.freeSequences,
      queuedRequests: this.admission.queued,
      usedCells,
      totalCells: this.settings.contextSize,
      steps: this.steps,
      multiSequenceSteps: this.multiSequenceSteps,
    };
  }

  private prepare(request: GenerateMessage): Prepared {
    const { input } = request;
    const text = input.kind === 'chat' ? this.template.render(input.messages) : input.prompt;
    const prompt = this.model.tokenize(text, { addSpecial: true, parseSpecial: true });
    if (prompt.length === 0) throw new BadRequestError('the prompt is empty', input.kind === 'chat' ? 'messages' : 'prompt');
    const room = this.settings.contextSize - prompt.length;
    const maxTokens = request.maxTokens ?? Math.min(this.settings.defaultMaxTokens, room);
    if (maxTokens < 1 || prompt.length + maxTokens > this.settings.contextSize) {
      throw new ContextExceededError(prompt.length + Math.max(maxTokens, 1), this.settings.contextSize);
    }
    return { request, prompt, maxTokens };
  }

  private start(prepared: Prepared, reservation: Reservation): void {
    const { request, prompt } = prepared;
    const { sampling } = request;
    const sampler = new this.addon.Sampler(this.model, {
      temperature: sampling.temperature,
      topK: sampling.topK,
      topP: sampling.topP,
      minP: sampling.minP,
      repeatPenalty: sampling.repeatPenalty,
      frequencyPenalty: sampling.frequencyPenalty,
      presencePenalty: sampling.presencePenalty,
      ...(sampling.seed === undefined ? {} : { seed: sampling.seed }),
    });
    sampler.accept(prompt);
    const sequence = new Sequence({ ...request, maxTokens: prepared.maxTokens }, reservation.seqId, prompt, sampler, reservation.cells);
    this.active.set(request.requestId, sequence);
    this.post({ type: 'started', requestId: request.requestId, promptTokens: prompt.length, cachedTokens: 0 });
  }

  private kick(): void {
    if (this.looping || this.dead) return;
    this.looping = true;
    void this.loop();
  }

  private async loop(): Promise<void> {
    while (this.active.size > 0 && !this.dead) await this.step();
    this.looping = false;
  }

  /** One step: plan → one batched decode → apply aborts → update sequences → post results. */
  private async step(): Promise<void> {
    const plan = planStep([...this.active.values()], this.settings.batchTokens);
    if (plan === null) return;
    const samples = plan.samples.map((s) => ({ index: s.index, sampler: s.sequence.sampler }));
    this.decoding = true;
    let sampled: Int32Array;
    try {
      sampled = await this.context.decode(plan.batch, samples);
    } catch (error) {
      this.decoding = false;
      return this.onDecodeError(error, plan);
    }
    this.decoding = false;
    this.countStep(plan.sequenceCount);
    for (const { sequence, tokens } of plan.prefill) sequence.prefilled += tokens;
    plan.samples.forEach(({ sequence }, i) => this.acceptToken(sequence, sampled[i] ?? -1));
    this.reapFinished();
  }

  private countStep(sequenceCount: number): void {
    this.steps++;
    if (sequenceCount > 1) this.multiSequenceSteps++;
  }

  private acceptToken(sequence: Sequence, token: number): void {
    if (sequence.phase === 'finished') return;
    sequence.phase = 'generate';
    if (this.model.isEog(token)) return this.finish(sequence, 'stop');
    sequence.generated++;
    sequence.pendingToken = token;
    const text = sequence.text.push(this.model.tokenToPiece(token));
    if (text !== '') this.post({ type: 'tokens', requestId: sequence.requestId, text, tokenCount: 1 });
    if (sequence.text.hitStop) return this.finish(sequence, 'stop');
    if (sequence.generated >= (sequence.request.maxTokens ?? Infinity)) this.finish(sequence, 'length');
  }

  private finish(sequence: Sequence, reason: FinishReason): void {
    if (sequence.phase === 'finished') return;
    sequence.phase = 'finished';
    sequence.finishReason = reason;
    if (reason === 'abort') return;
    const rest = sequence.text.flush();
    if (rest !== '') this.post({ type: 'tokens', requestId: sequence.requestId, text: rest, tokenCount: 0 });
  }

  /** Frees finished sequences' KV cells and samplers, posts their results, starts queued requests. */
  private reapFinished(): void {
    for (const sequence of [...this.active.values()]) {
      if (sequence.phase === 'finished') this.release(sequence, true);
    }
  }

  private release(sequence: Sequence, notify: boolean): void {
    this.active.delete(sequence.requestId);
    this.context.seqRemove(sequence.seqId);
    sequence.sampler.dispose();
    if (notify) this.postDone(sequence.requestId, sequence.finishReason ?? 'stop', sequence.prompt.length, sequence.generated);
    for (const next of this.admission.release({ seqId: sequence.seqId, cells: sequence.reservedCells })) {
      this.start(next.item, next.reservation);
    }
  }

  private postDone(requestId: string, finishReason: FinishReason, promptTokens: number, completionTokens: number): void {
    this.post({ type: 'done', requestId, finishReason, usage: { promptTokens, completionTokens, cachedTokens: 0 } });
  }

  private fail(requestId: string, error: unknown): void {
    this.post({ type: 'failed', requestId, error: toErrorPayload(error) });
  }

  /**
   * No KV slot (llama.cpp rolled the batch back): the prompts being prefilled give way with a 429 and
   * generating sequences retry next step. Anything else leaves the context in an unknown state: dead.
   */
  private onDecodeError(error: unknown, plan: StepPlan<Sequence>): void {
    if ((error as { code?: string }).code !== 'ERR_KV_NO_SLOT') return this.die(error);
    for (const { sequence } of plan.prefill) {
      this.fail(sequence.requestId, new SemanticError(ErrorCode.PoolExhausted, 'no KV cells free for this prompt', { retryAfter: 1 }));
      sequence.phase = 'finished';
      this.release(sequence, false);
    }
  }

  private die(error: unknown): void {
    this.dead = true;
    const payload = { code: ErrorCode.EngineDead, message: `decode failed: ${toErrorPayload(error).message}` };
    for (const sequence of this.active.values()) this.post({ type: 'failed', requestId: sequence.requestId, error: payload });
    for (const queued of this.admission.takeAllQueued()) this.post({ type: 'failed', requestId: queued.request.requestId, error: payload });
    this.active.clear();
    this.post({ type: 'engine_dead', error: payload });
  }
}
