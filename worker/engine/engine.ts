/**
 * The batch engine on the inference thread: admits requests, runs one batched decode per step for
 * every admitted sequence (continuous batching: requests join and leave between steps), streams text
 * back, and frees each sequence's KV cells the moment its request ends or is aborted.
 */
import type { Addon, Context, Model } from './addon.js';
import { Admission, type Reservation } from './admission.js';
import { commonPrefixLength, HotCache, type HotEntry } from './hot-cache.js';
import { RamCache } from './ram-cache.js';
import type { DiskTier } from '../persistence/disk-tier.js';
import { ChatTemplate } from './chat-template.js';
import { planStep, type StepPlan } from './scheduler.js';
import { Sequence } from './sequence.js';
import { BadRequestError, ContextExceededError, ErrorCode, SemanticError, toErrorPayload } from '../../shared/errors.js';
import type { CacheTier, EngineStats, FinishReason, GenerateMessage, InferenceToFront } from '../../shared/protocol/messages.js';

export interface EngineSettings {
  contextSize: number;
  maxSequences: number;
  batchTokens: number;
  /** Requests waiting for a sequence at most; more are refused with 429. */
  maxQueued: number;
  /** Prompt + max tokens of all waiting requests at most; more are refused with 429. */
  maxQueuedTokens: number;
  /** Generation cap when a request names no max tokens. */
  defaultMaxTokens: number;
  /** Bytes of exported KV state the RAM tier may hold. */
  ramBudgetBytes: number;
}

interface Prepared {
  request: GenerateMessage;
  prompt: Int32Array;
  maxTokens: number;
}

export class Engine {
  private readonly active = new Map<string, Sequence>();
  private readonly admission: Admission<Prepared>;
  private readonly hot = new HotCache();
  private readonly ram: RamCache;
  /** Requests not yet admitted; admitted between steps, when the context may be touched. */
  private readonly incoming: GenerateMessage[] = [];
  /** Finished turns whose state is to be exported and written to the disk tier before the agent's next turn. */
  private readonly toPersist: HotEntry[] = [];
  /** Agents with a request admitted or queued, and their later requests, which wait their turn. */
  private readonly busyAgents = new Map<string, GenerateMessage[]>();
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
    private readonly disk?: DiskTier,
  ) {
    this.admission = new Admission(settings.maxSequences, settings.contextSize, settings.maxQueued, settings.maxQueuedTokens);
    this.ram = new RamCache(settings.ramBudgetBytes);
    const info = model.info();
    const piece = (token: number): string => (token < 0 ? '' : model.detokenize(Int32Array.of(token), { special: true }));
    this.template = new ChatTemplate(info.chatTemplate, { bos: piece(info.bos), eos: piece(info.eos) });
  }

  submit(request: GenerateMessage): void {
    if (this.dead) return this.fail(request.requestId, new SemanticError(ErrorCode.EngineDead, 'the engine has stopped'));
    this.incoming.push(request);
    if (!this.decoding) this.admitIncoming();
    this.kick();
  }

  /** One agent's requests run in arrival order: a request waits while its agent has one in flight. */
  private admitIncoming(): void {
    for (const request of this.incoming.splice(0)) {
      const waiting = this.busyAgents.get(request.agentId);
      if (waiting !== undefined) waiting.push(request);
      else this.admit(request);
    }
  }

  private admit(request: GenerateMessage): void {
    let prepared: Prepared;
    try {
      prepared = this.prepare(request);
    } catch (error) {
      return this.fail(request.requestId, error);
    }
    this.busyAgents.set(request.agentId, []);
    if (this.reuseHot(prepared)) return;
    const admitted = this.admission.tryAdmit(prepared, prepared.prompt.length + prepared.maxTokens);
    if (admitted === 'queue-full') {
      this.fail(request.requestId, new SemanticError(ErrorCode.QueueFull, 'too many requests are waiting', { retryAfter: 1 }));
      return this.agentDone(request.agentId);
    }
    if (admitted !== null) return this.start(prepared, admitted, 0, 'miss');
    // Queued: before the next step, idle agents' cells make way (demoteIdleForWaiting).
  }

  /**
   * A returning agent whose cells are still in the context keeps the longest common prefix of its
   * cached tokens and its new prompt, and prefills only the rest. At least the prompt's last token is
   * recomputed: its logits give the first new token. False (cache dropped) if it cannot get its cells.
   */
  private reuseHot(prepared: Prepared): boolean {
    const entry = this.hot.take(prepared.request.agentId);
    if (entry === undefined) return false;
    const { prompt } = prepared;
    const kept = Math.min(commonPrefixLength(entry.tokens, prompt), prompt.length - 1);
    this.context.seqRemove(entry.seqId, kept, -1);
    const reservation: Reservation = { seqId: entry.seqId, cells: entry.tokens.length };
    const cells = prompt.length + prepared.maxTokens;
    while (this.admission.resize(reservation, cells) === null) {
      if (this.hot.size === 0) {
        this.context.seqRemove(entry.seqId);
        this.startAll(this.admission.release(reservation));
        return false;
      }
      this.evictLeastRecent();
    }
    this.start(prepared, reservation, kept, kept > 0 ? 'hot' : 'miss');
    return true;
  }

  /** Drops the least recently used idle agent's cells (its next turn is a miss). */
  private evictLeastRecent(): void {
    const entry = this.hot.takeLeastRecent();
    if (entry === undefined) return;
    this.context.seqRemove(entry.seqId);
    this.startAll(this.admission.release({ seqId: entry.seqId, cells: entry.tokens.length }));
  }

  private startAll(started: { item: Prepared; reservation: Reservation }[]): void {
    for (const next of started) this.start(next.item, next.reservation, 0, 'miss');
  }

  /** The agent's turn is over: its waiting requests go back in front, in order, the first admitted now. */
  private agentDone(agentId: string): void {
    const waiting = this.busyAgents.get(agentId) ?? [];
    this.busyAgents.delete(agentId);
    this.incoming.unshift(...waiting);
    if (!this.decoding) this.admitIncoming();
  }

  /** Idempotent. A running sequence is freed at the next step boundary (at once if no step is running). */
  abort(requestId: string): void {
    const pending = this.incoming.findIndex((r) => r.requestId === requestId);
    if (pending >= 0) {
      this.incoming.splice(pending, 1);
      return this.postDone(requestId, 'abort', 0, 0, 0);
    }
    for (const waiting of this.busyAgents.values()) {
      const at = waiting.findIndex((r) => r.requestId === requestId);
      if (at >= 0) {
        waiting.splice(at, 1);
        return this.postDone(requestId, 'abort', 0, 0, 0);
      }
    }
    const queued = this.admission.removeQueued((p) => p.request.requestId === requestId);
    if (queued !== undefined) {
      this.postDone(requestId, 'abort', queued.prompt.length, 0, 0);
      return this.agentDone(queued.request.agentId);
    }
    const sequence = this.active.get(requestId);
    if (sequence === undefined || sequence.aborted) return;
    sequence.aborted = true;
    this.finish(sequence, 'abort');
    if (!this.decoding) this.reapFinished();
  }

  stats(): EngineStats {
    let usedCells = this.hot.cells;
    for (const sequence of this.active.values()) usedCells += sequence.usedCells;
    return {
      activeSequences: this.active.size,
      idleSequences: this.hot.size,
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

  private start(prepared: Prepared, reservation: Reservation, cachedTokens: number, cacheTier: CacheTier): void {
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
    const sequence = new Sequence({ ...request, maxTokens: prepared.maxTokens }, prompt, sampler, reservation, cachedTokens);
    this.active.set(request.requestId, sequence);
    const restore = cacheTier === 'miss' ? this.savedCacheOf(request.agentId) : undefined;
    if (restore !== undefined) {
      sequence.phase = 'restoring';
      sequence.restore = restore;
      return; // `started` is posted once the state is imported (restoreSaved)
    }
    this.postStarted(sequence, cacheTier);
  }

  /** The RAM tier first, then the disk tier: how to get the agent's saved tokens and state. */
  private savedCacheOf(agentId: string): Sequence['restore'] {
    const saved = this.ram.take(agentId);
    if (saved !== undefined) return { tier: 'ram', load: () => Promise.resolve(saved) };
    const disk = this.disk;
    if (disk?.has(agentId) === true) return { tier: 'disk', load: () => disk.load(agentId) };
    return undefined;
  }

  private postStarted(sequence: Sequence, cacheTier: CacheTier): void {
    const { requestId, prompt, cachedTokens } = sequence;
    this.post({ type: 'started', requestId, promptTokens: prompt.length, cachedTokens, cacheTier });
  }

  /**
   * Waiting requests come before idle caches: the least recently used idle agents' states are
   * exported to the RAM tier and their cells freed until the queue moves or no idle agent is left.
   */
  private async demoteIdleForWaiting(): Promise<void> {
    while (this.admission.queued > 0 && this.hot.size > 0) {
      const entry = this.hot.takeLeastRecent() as HotEntry;
      try {
        this.ram.put(entry.agentId, entry.tokens, await this.context.stateSeqGet(entry.seqId));
      } catch {
        // Export failed: the agent's next turn is a miss, never a wrong answer.
      }
      this.context.seqRemove(entry.seqId);
      this.startAll(this.admission.release({ seqId: entry.seqId, cells: entry.tokens.length }));
    }
  }

  /** Imports saved states into the sequences started for returning agents, keeping the common prefix. */
  private async restoreSaved(): Promise<void> {
    for (const sequence of this.active.values()) {
      if (sequence.phase !== 'restoring' || sequence.restore === undefined) continue;
      const { tier, load } = sequence.restore;
      sequence.restore = undefined;
      const reused = await this.importSaved(sequence, load).catch(() => 0);
      if (reused === 0) this.context.seqRemove(sequence.seqId);
      if (sequence.phase === 'restoring') sequence.phase = 'prefill';
      this.postStarted(sequence, reused > 0 ? tier : 'miss');
    }
  }

  private async importSaved(sequence: Sequence, load: () => Promise<{ tokens: Int32Array; state: Uint8Array } | null>): Promise<number> {
    const saved = await load();
    if (saved === null) return 0;
    const reusable = Math.min(commonPrefixLength(saved.tokens, sequence.prompt), sequence.prompt.length - 1);
    if (reusable === 0) return 0;
    await this.context.stateSeqSet(sequence.seqId, saved.state);
    this.context.seqRemove(sequence.seqId, reusable, -1);
    sequence.reuse(reusable);
    return reusable;
  }

  /** Exports each finished turn's state and hands it to the disk tier (write-behind), then lets the agent go on. */
  private async persistFinished(): Promise<void> {
    for (const entry of this.toPersist.splice(0)) {
      const current = this.hot.peek(entry.agentId);
      if (this.disk !== undefined && current?.seqId === entry.seqId) {
        try {
          const state = await this.context.stateSeqGet(entry.seqId);
          const agentId = entry.agentId;
          this.disk.persist(agentId, entry.tokens, state).then(
            (bytes) => this.post({ type: 'persisted', agentId, bytes }),
            () => undefined, // a failed write leaves the previous file or none: a later miss, never a wrong answer
          );
        } catch {
          // export failed: nothing written for this turn
        }
      }
      this.agentDone(entry.agentId);
    }
  }

  private kick(): void {
    if (this.looping || this.dead) return;
    this.looping = true;
    void this.loop();
  }

  private hasWork(): boolean {
    return this.active.size > 0 || this.incoming.length > 0 || this.toPersist.length > 0 || (this.admission.queued > 0 && this.hot.size > 0);
  }

  private async loop(): Promise<void> {
    while (this.hasWork() && !this.dead) await this.step();
    this.looping = false;
  }

  /** One step: plan → one batched decode → apply aborts → update sequences → post results. */
  private async step(): Promise<void> {
    this.admitIncoming();
    this.decoding = true;
    await this.persistFinished();
    await this.demoteIdleForWaiting();
    await this.restoreSaved();
    this.decoding = false;
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
    sequence.output.push(token);
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

  /**
   * Ends a request. Unless told to drop it, the agent's cells stay in the context (hot-idle) holding
   * the prompt and every generated token already decoded, for its next turn to reuse.
   */
  private release(sequence: Sequence, notify: boolean, keepCache = true): void {
    this.active.delete(sequence.requestId);
    sequence.sampler.dispose();
    if (notify) {
      const { promptTokens, completionTokens } = { promptTokens: sequence.prompt.length, completionTokens: sequence.generated };
      this.postDone(sequence.requestId, sequence.finishReason ?? 'stop', promptTokens, completionTokens, sequence.cachedTokens);
    }
    const held = keepCache ? this.context.seqPosMax(sequence.seqId) + 1 : 0;
    if (held > 0) {
      const tokens = Int32Array.from([...sequence.prompt, ...sequence.output].slice(0, held));
      this.hot.put(sequence.agentId, sequence.seqId, tokens);
      this.startAll(this.admission.resize(sequence.reservation, held) ?? []);
      if (this.disk !== undefined) {
        this.toPersist.push({ agentId: sequence.agentId, seqId: sequence.seqId, tokens, lastUsed: 0 });
        return this.kick();
      }
    } else {
      this.context.seqRemove(sequence.seqId);
      this.startAll(this.admission.release(sequence.reservation));
    }
    this.agentDone(sequence.agentId);
  }

  private postDone(requestId: string, finishReason: FinishReason, promptTokens: number, completionTokens: number, cachedTokens: number): void {
    this.post({ type: 'done', requestId, finishReason, usage: { promptTokens, completionTokens, cachedTokens } });
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
      this.release(sequence, false, false);
    }
  }

  private die(error: unknown): void {
    this.dead = true;
    const payload = { code: ErrorCode.EngineDead, message: `decode failed: ${toErrorPayload(error).message}` };
    for (const sequence of this.active.values()) this.post({ type: 'failed', requestId: sequence.requestId, error: payload });
    const waiting = [...this.incoming.splice(0), ...[...this.busyAgents.values()].flat(), ...this.admission.takeAllQueued().map((p) => p.request)];
    for (const request of waiting) this.post({ type: 'failed', requestId: request.requestId, error: payload });
    this.active.clear();
    this.post({ type: 'engine_dead', error: payload });
  }
}
