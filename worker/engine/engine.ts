/**
 * The batch engine on the inference thread. Between steps it admits requests (reusing a returning
 * agent's cache from the fastest tier that has it), spills idle agents to make room, and imports
 * saved states; each step is one batched decode of every admitted sequence (continuous batching:
 * requests join and leave between steps), whose text is streamed back. Everything that touches the
 * context happens between steps, in `boundary`, or in the step's decode: never concurrently.
 */
import type { Addon, Context, Model } from './addon.js';
import { Admission, noRoomError, type Refusal, type Reservation } from './admission.js';
import { AgentTurns, isFork, type Turn } from './agent-turns.js';
import { QueueBudget, queueRefusalError } from './queue-budget.js';
import { BlockPool } from './kv/block-pool.js';
import type { HotEntry } from './kv/hot-cache.js';
import { AgentTiers } from './kv/tiers.js';
import { SharedPrefixes } from './kv/shared-prefix.js';
import { applyStart, planStart, sharedBlocksOf, type CacheStart, type StartPlan } from './cache-start.js';
import { DeferredOps } from './kv/agents.js';
import { EngineAdmin } from './engine-admin.js';
import type { DiskTier } from '../persistence/disk-tier.js';
import { RequestInput } from './request-input.js';
import { countStep, planStep, type StepPlan } from './scheduler.js';
import { retryWithoutFailing, type Retried } from './decode-isolation.js';
import { Sequence } from './sequence.js';
import { reasoningBudgetFor } from './reasoning-budget.js';
import type { ReasoningStarts } from '../tools/reasoning.js';
import type { EngineSettings } from './settings.js';
import { restoreSaved } from './restore.js';
import { RequestTimelines } from '../tracing/timeline.js';
import { EngineMetrics } from './metrics.js';
import { RequestClock } from './request-clock.js';
import { drainingError, ErrorCode, SemanticError, toErrorPayload } from '../../shared/errors.js';
import type { CacheTier, FinishReason, GenerateInput, GenerateMessage, InferenceToFront, ReasoningRequest, SharedFrom, Usage } from '../../shared/protocol/messages.js';

interface Prepared extends Turn {
  /** The agent's hot cache, pinned (not spillable) while the request waits. */
  hot: HotEntry | undefined;
}

export class Engine {
  private readonly active = new Map<string, Sequence>();
  private readonly admission: Admission<Prepared>;
  private readonly tiers: AgentTiers;
  private readonly shared: SharedPrefixes;
  /** Everything waiting, behind its agent's turn or for cells, counts against the queue limits here. */
  private readonly queue: QueueBudget;
  private readonly turns: AgentTurns;
  private readonly input: RequestInput;
  private readonly agentOps = new DeferredOps();
  readonly admin: EngineAdmin; // stats, the Agents API, runtime limits and cache clears
  private looping = false;
  private startedAny = false; // a request started at this boundary: idle agents may leave the context
  /** Wakes the idle loop when the next write-behind is due. */
  private writeTimer: NodeJS.Timeout | undefined;
  /** A drain's writes use the context: no step may start meanwhile. */
  private persisting = false;
  private dead = false;
  /** Set by drain(): resolves with what the drain did. */
  private drained: Promise<{ persisted: number; cut: number }> | undefined;
  private cutCount = 0;
  private idleWaiters: (() => void)[] = []; // resolved when no sequence is active (a drain waits)
  /** Decode steps, tokens they sampled, and steps that carried more than one sequence (EngineStats). */
  private readonly counts = { steps: 0, sampledTokens: 0, multiSequenceSteps: 0 };
  /** The step loop's own time (EngineStats.timings; the addon adds what happens inside a decode call). */
  private readonly stepTimes = { boundaryMs: 0, decodeCallMs: 0, acceptMs: 0 };
  /** Traced requests' phases and turn writes, sent to the front as spans (worker/tracing/timeline.ts). */
  private readonly timelines = new RequestTimelines((spans) => this.post({ type: 'spans', spans }));
  /** Each request's moments, read by the metrics' latencies and the traced requests' spans. */
  private readonly clock: RequestClock;

  constructor(
    addon: Addon,
    private readonly model: Model,
    private readonly context: Context,
    private readonly settings: EngineSettings,
    private readonly post: (message: InferenceToFront) => void,
    disk?: DiskTier,
    /** The thread's registry outlives a model swap's engine (worker/inference/runtime.ts). */
    private readonly metrics = new EngineMetrics(),
  ) {
    this.clock = new RequestClock(metrics, this.timelines);
    const pool = new BlockPool(settings.contextSize, settings.blockSize);
    this.queue = new QueueBudget({ maxQueued: settings.maxQueued, maxQueuedTokens: settings.maxQueuedTokens, maxQueuedPerAgent: settings.maxQueuedPerAgent });
    this.turns = new AgentTurns(this.queue);
    this.admission = new Admission(settings.maxSequences, pool, this.queue, ({ request }: Prepared) => request);
    const written = (agentId: string, bytes: number): void => this.post({ type: 'persisted', agentId, bytes });
    if (disk !== undefined) disk.tracing = this.timelines;
    this.tiers = new AgentTiers(context, this.admission, settings.ramBudgetBytes, disk, written, settings.blockSize, settings.scratchSeq);
    this.tiers.onEvicted = (from, to) => metrics.evicted(from, to);
    this.shared = new SharedPrefixes(this.tiers, this.active, settings.sequenceSize >= settings.contextSize);
    // Whole blocks of one sequence's cells: all the context's, or its stream's share when split.
    const capacity = Math.floor(Math.min(settings.sequenceSize, settings.contextSize) / settings.blockSize) * settings.blockSize;
    this.input = new RequestInput(addon, model, capacity, settings.defaultMaxTokens);
    const { active, admission, queue, tiers, turns, agentOps, counts, stepTimes } = this;
    this.admin = new EngineAdmin({ settings, context, active, admission, queue, tiers, turns, agentOps, counts, stepTimes, kick: () => this.kick() });
  }

  submit(request: GenerateMessage): void {
    this.clock.submitted(request);
    if (this.dead) return this.fail(request.requestId, new SemanticError(ErrorCode.EngineDead, 'the engine has stopped'));
    if (this.drained !== undefined) return this.fail(request.requestId, drainingError());
    this.turns.submit(request);
    this.kick();
  }

  /** Idempotent; a running sequence is freed at the next step boundary. */
  abort(requestId: string): void {
    if (this.turns.remove(requestId)) {
      this.postDone(requestId, 'abort', { promptTokens: 0, completionTokens: 0, cachedTokens: 0 });
      return this.kick(); // a turn that was next in line passed its agent's turn on
    }
    const queued = this.admission.removeQueued((p) => p.request.requestId === requestId);
    if (queued !== undefined) {
      this.unpin(queued);
      this.postDone(requestId, 'abort', { promptTokens: queued.prompt.length, completionTokens: 0, cachedTokens: 0 });
      this.turns.turnEnded(queued.request.agentId);
      return this.kick(); // its agent's next request, or the queue behind it, may go on now
    }
    if (this.active.get(requestId)?.abort() === true) this.kick();
  }

  /** Stops admitting (waiting requests get ERR_DRAINING), lets running ones finish, then writes every
   *  idle agent's unwritten turn to its cache file and waits for the writes. Idempotent. */
  drain(): Promise<{ persisted: number; cut: number }> {
    this.drained ??= this.runDrain();
    return this.drained;
  }

  /**
   * The drain's deadline passed: running requests end now, answered ERR_DRAINING. Like an abort, each
   * keeps what its agent's cells hold (the history it was given, and the tokens decoded so far) as the
   * agent's cache, which the drain then writes: the last completed turn is never lost.
   */
  cut(): void {
    for (const sequence of this.active.values()) if (sequence.cutShort()) this.cutCount++;
    this.kick();
  }

  private async runDrain(): Promise<{ persisted: number; cut: number }> {
    for (const request of this.turns.takeAll()) this.fail(request.requestId, drainingError());
    for (const prepared of this.admission.takeAllQueued()) {
      this.unpin(prepared);
      this.fail(prepared.request.requestId, drainingError());
    }
    // The step loop may still be running without a request (a write-behind export in flight): the
    // context takes one call at a time, so the drain's writes wait for it, and it stays stopped meanwhile.
    this.persisting = true;
    clearTimeout(this.writeTimer);
    if (this.active.size > 0 || this.looping) await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
    const persisted = this.dead ? 0 : await this.tiers.persistAll().finally(() => (this.persisting = false));
    return { persisted, cut: this.cutCount };
  }

  /** Prompt tokens of `input` as generation would count them (Anthropic count_tokens); throws coded 400s. */
  countTokens(input: GenerateInput, reasoning?: ReasoningRequest): number {
    return this.input.prompt(input, reasoning).length;
  }

  /** Null: the model's template does not reason; otherwise where its output starts, thinking on and off (the model summary). */
  get reasoning(): ReasoningStarts | null {
    return this.input.reasoning;
  }

  /** Before a model swap unloads the model: every request already submitted runs to its end (the front
   *  holds new ones), then the engine stops for good and writes every idle agent's unwritten turn. */
  async retire(): Promise<number> {
    this.kick();
    if (this.looping) await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
    this.dead = true;
    clearTimeout(this.writeTimer);
    return this.tiers.persistAll();
  }

  private kick(): void {
    if (this.looping || this.dead || this.persisting) return;
    this.looping = true;
    void this.loop();
  }

  private hasWork(): boolean {
    const writeDue = (this.tiers.nextWriteDue ?? Infinity) <= performance.now();
    return this.active.size > 0 || this.turns.hasIncoming || this.admission.queued > 0 || writeDue || this.agentOps.pending;
  }

  private async loop(): Promise<void> {
    clearTimeout(this.writeTimer);
    // A step with nothing to decode ends the loop: what waits (a queued request) moves on the next kick.
    while (this.hasWork() && !this.dead && (await this.step()));
    this.looping = false;
    // A turn ended at the last boundary with nothing left to decode: its agent's next turn starts now.
    if (this.turns.hasIncoming && !this.dead) return this.kick();
    if (this.active.size === 0 || this.dead) for (const resolve of this.idleWaiters.splice(0)) resolve();
    const due = this.tiers.nextWriteDue;
    if (due !== undefined && !this.dead) this.writeTimer = setTimeout(() => this.kick(), Math.max(0, due - performance.now()));
  }

  /** One step: the boundary's bookkeeping, then one batched decode, then the sequences' new tokens. False: nothing to decode. */
  private async step(): Promise<boolean> {
    const started = performance.now();
    await this.boundary();
    let plan = planStep([...this.active.values()], this.settings.batchTokens);
    const planned = performance.now();
    this.stepTimes.boundaryMs += planned - started;
    if (plan === null) {
      this.reapFinished(); // aborted while the boundary awaited an import or export: it ends now, not at the next wake
      return false;
    }
    const samples = plan.samples.map((s) => ({ index: s.index, sampler: s.sequence.sampler }));
    let sampled: Int32Array;
    try {
      sampled = await this.context.decode(plan.batch, samples);
    } catch (error) {
      const retried = await this.onDecodeError(error, plan);
      if (retried === undefined) return true;
      ({ plan, sampled } = retried); // the step without the requests whose decode failed
    } finally {
      this.stepTimes.decodeCallMs += performance.now() - planned;
    }
    const decoded = performance.now();
    this.tiers.markBusy(decoded);
    countStep(this.counts, plan);
    this.metrics.step(plan.sequenceCount);
    for (const { sequence, tokens } of plan.prefill) sequence.prefilled += tokens;
    plan.samples.forEach(({ sequence, index }, i) => {
      this.acceptToken(sequence, sampled[i] ?? -1);
      if (sequence.phase === 'finished') sequence.finalLogits = this.context.logitsAt(index);
    });
    this.reapFinished();
    this.stepTimes.acceptMs += performance.now() - decoded;
    return true;
  }

  private async boundary(): Promise<void> {
    if (this.queue.size > 0 || this.turns.hasIncoming) this.tiers.markBusy(performance.now());
    this.reapFinished();
    await this.tiers.writeDue(performance.now());
    await this.agentOps.runAll();
    this.admitIncoming();
    await this.spillForQueue();
    if (this.startedAny && this.settings.spillIdleOnStart === true) await this.tiers.spillIdleOwners();
    this.startedAny = false;
    const started = (sequence: Sequence, tier: CacheTier, from?: SharedFrom): void => this.postStarted(sequence, tier, from);
    await restoreSaved(this.active.values(), { context: this.context, admission: this.admission, started, restored: (tier, at) => this.metrics.restored(tier, at) });
    if (this.sampleSaved()) this.reapFinished(); // one may have ended on its first token
  }

  /** One agent's requests run in arrival order: a request waits while its agent has one in flight. */
  private admitIncoming(): void {
    const tokenize = (request: GenerateMessage): Turn => {
      this.clock.taken(request.requestId);
      return { request, ...this.input.tokens(request) };
    };
    for (const turn of this.turns.takeStartable(tokenize, (requestId, error) => this.fail(requestId, error))) this.admit(turn);
  }

  /** The request's turn: it takes its agent's hot cache, then starts, waits for cells, or is refused. */
  private admit(turn: Turn): void {
    const prepared: Prepared = { ...turn, hot: this.tiers.hot.take(turn.request.agentId) };
    const tokens = prepared.prompt.length + prepared.maxTokens;
    const plan = planStart(this.shared, prepared);
    const admitted = this.admission.tryAdmit(prepared, tokens, prepared.hot?.seqId, sharedBlocksOf(plan, this.settings.blockSize));
    if (typeof admitted !== 'string') return this.startPrepared(prepared, admitted, plan);
    if (admitted === 'queued') this.clock.queued(turn.request.requestId);
    else this.refuse(prepared, admitted);
  }

  /** 429 at once: the queue has no place for it, or it could never start behind the queue. */
  private refuse(prepared: Prepared, why: Refusal): void {
    this.unpin(prepared);
    this.fail(prepared.request.requestId, why === 'no-room' ? noRoomError() : queueRefusalError(why));
    this.turns.turnEnded(prepared.request.agentId);
  }

  /** A request that will not run gives its agent's pinned hot cache back to the hot tier. */
  private unpin(prepared: Prepared): void {
    if (prepared.hot !== undefined) this.tiers.hot.restore(prepared.hot);
  }

  /**
   * Waiting requests come before idle caches: while the queue's head lacks a sequence or blocks that
   * idle agents hold, the least recently used idle agent is spilled down the tiers. Blocks held by
   * running requests come back when they end; spilling idle agents for those would only lose caches,
   * so the head waits for them. With nothing running, nothing will come back: a head that still
   * cannot start is refused rather than left waiting forever (admission's canEverStart prevents it).
   */
  private async spillForQueue(): Promise<void> {
    for (;;) {
      for (const { item, reservation } of this.admission.startQueued()) this.startPrepared(item, reservation);
      const short = this.admission.headShortfall();
      if (short === undefined) return;
      if ((short.sequence || short.blocks <= this.tiers.spillableBlocks) && (await this.tiers.spillLeastRecent())) continue;
      if (this.active.size > 0) return;
      const stuck = this.admission.removeHead();
      if (stuck !== undefined) this.refuse(stuck, 'no-room');
    }
  }

  /** Admitted at once: as admission planned (shared blocks must join exactly those cells). After a wait: planned anew. */
  private startPrepared(prepared: Prepared, reservation: Reservation, plan: StartPlan = planStart(this.shared, prepared)): void {
    this.startedAny = true;
    const share = sharedBlocksOf(plan, this.settings.blockSize);
    if (share !== undefined) this.admission.joinShared(reservation, share);
    this.start(prepared, reservation, applyStart(this.context, plan, reservation.seqId));
  }

  /** A miss looks for the agent's own saved state unless `restore` names one (another agent's). */
  private start(prepared: Prepared, reservation: Reservation, found: CacheStart): void {
    const { request, prompt } = prepared;
    const { cachedTokens, cacheTier } = found;
    const sampler = this.input.sampler(request, prompt);
    const reasoning = reasoningBudgetFor(request, prepared.reasoningStart ?? 'answer', () => this.input.closeTokens());
    const sequence = new Sequence({ ...request, maxTokens: prepared.maxTokens }, prompt, sampler, reservation, cachedTokens, found.logits, reasoning);
    this.active.set(request.requestId, sequence);
    // While it runs, its prompt's cells can be shared as they are prefilled.
    if (request.shareScope !== undefined && !isFork(request.agentId)) this.tiers.prefixes.set(request.agentId, request.shareScope, prompt);
    const restore = found.restore ?? (cacheTier === 'miss' ? this.tiers.savedCacheOf(request.agentId) : undefined);
    this.clock.admitted(request.requestId, restore?.tier);
    // `started` is posted once the state is imported (restore.ts).
    if (restore !== undefined) return sequence.awaitRestore(restore);
    this.postStarted(sequence, cacheTier, found.sharedFrom);
  }

  private postStarted(sequence: Sequence, cacheTier: CacheTier, sharedFrom?: SharedFrom): void {
    const { requestId, prompt, cachedTokens } = sequence;
    sequence.cacheTier = cacheTier;
    this.clock.started(requestId, prompt.length, cachedTokens, cacheTier);
    this.post({ type: 'started', requestId, promptTokens: prompt.length, cachedTokens, cacheTier, ...(sharedFrom === undefined ? {} : { sharedFrom }) });
  }

  /** Sequences whose whole prompt was cached with the logits after it sample their first token from those (no decode); true if one ended on it. */
  private sampleSaved(): boolean {
    let finished = false;
    for (const sequence of this.active.values()) {
      const logits = sequence.takeSavedLogits();
      if (logits === undefined) continue;
      this.counts.sampledTokens++;
      this.acceptToken(sequence, sequence.sampler.sampleLogits(logits));
      finished ||= sequence.finishReason !== undefined;
    }
    return finished;
  }

  private acceptToken(sequence: Sequence, token: number): void {
    if (sequence.phase === 'prefill') this.clock.firstSampled(sequence.requestId);
    if (!sequence.startGenerating()) return;
    token = sequence.steer(token);
    if (this.model.isEog(token)) return this.finish(sequence, 'stop');
    const text = sequence.append(token, this.model.tokenToPiece(token, { special: sequence.rendersSpecialTokens }));
    this.clock.emitted(sequence.requestId);
    if (text !== '') this.post({ type: 'tokens', requestId: sequence.requestId, text, tokenCount: 1 });
    if (sequence.text.hitStop) return this.finish(sequence, 'stop');
    if (sequence.reachedMaxTokens) this.finish(sequence, 'length');
  }

  private finish(sequence: Sequence, reason: FinishReason): void {
    if (!sequence.finish(reason) || reason === 'abort') return;
    const rest = sequence.text.flush();
    if (rest !== '') this.post({ type: 'tokens', requestId: sequence.requestId, text: rest, tokenCount: 0 });
  }

  /** Ends finished (and aborted) requests: posts their results, parks their agents' caches. */
  private reapFinished(): void {
    for (const sequence of [...this.active.values()]) {
      if (sequence.phase === 'finished') this.release(sequence, true, !isFork(sequence.agentId));
    }
  }

  /**
   * Ends a request. Unless told to drop it, the agent's cells stay in the context (hot-idle) holding
   * the prompt and every generated token already decoded, for its next turn to reuse; its blocks
   * shrink to those cells, and the turn is written behind to the disk tier once the agent is idle.
   */
  private release(sequence: Sequence, notify: boolean, keepCache = true): void {
    this.active.delete(sequence.requestId);
    sequence.sampler.dispose();
    if (notify && sequence.cut) {
      this.fail(sequence.requestId, drainingError('the server drain deadline passed before this request finished'));
    } else if (notify) {
      this.postDone(sequence.requestId, sequence.finishReason ?? 'stop', sequence.usage, sequence.text.matchedStop);
    }
    const held = keepCache ? this.context.seqPosMax(sequence.seqId) + 1 : 0;
    if (held <= 0) {
      this.context.seqRemove(sequence.seqId);
      this.admission.releaseSequence(sequence.seqId);
      return this.turns.turnEnded(sequence.agentId);
    }
    const tokens = Int32Array.from([...sequence.prompt, ...sequence.output].slice(0, held));
    this.admission.resize(sequence.reservation, held);
    this.timelines.turnParked(sequence.agentId, sequence.request.trace);
    this.tiers.park(sequence.agentId, sequence.seqId, tokens, sequence.finalLogits, performance.now(), sequence.request.shareScope, sequence.worthWriting(held));
    this.turns.turnEnded(sequence.agentId);
  }

  private postDone(requestId: string, finishReason: FinishReason, usage: Usage, stopSequence?: string): void {
    this.clock.done(requestId, { finishReason, usage });
    this.post({ type: 'done', requestId, finishReason, usage, ...(stopSequence === undefined ? {} : { stopSequence }) });
  }

  private fail(requestId: string, error: unknown): void {
    const payload = toErrorPayload(error);
    this.clock.failed(requestId, payload.code);
    this.post({ type: 'failed', requestId, error: payload });
  }

  /**
   * No KV slot (llama.cpp rolled the batch back, its cells fragmented beyond what the pool counts):
   * the prompts being prefilled give way with a 429 and generating sequences retry next step.
   * Anything else: the requests whose part fails alone fail, and the rest of the step is decoded
   * again without them (decode-isolation.ts); dead when that cannot be done.
   */
  private async onDecodeError(error: unknown, plan: StepPlan<Sequence>): Promise<Retried<Sequence> | undefined> {
    const noSlot = (error as { code?: string }).code === 'ERR_KV_NO_SLOT';
    const retried = noSlot ? undefined : await retryWithoutFailing(this.context, plan);
    if (!noSlot && retried === undefined) return void this.die(error);
    for (const { sequence, error: cause } of retried?.failed ?? plan.prefill.map(({ sequence }) => ({ sequence, error }))) {
      const why = noSlot
        ? new SemanticError(ErrorCode.PoolExhausted, 'no KV cells free for this prompt', { retryAfter: 1 })
        : new SemanticError(ErrorCode.Internal, `decoding this request failed: ${toErrorPayload(cause).message}`);
      this.fail(sequence.requestId, why);
      sequence.fail();
      this.release(sequence, false, false);
    }
    return retried;
  }

  private die(error: unknown): void {
    this.dead = true;
    const payload = { code: ErrorCode.EngineDead, message: `decode failed: ${toErrorPayload(error).message}` };
    for (const sequence of this.active.values()) this.post({ type: 'failed', requestId: sequence.requestId, error: payload });
    const waiting = [...this.turns.takeAll(), ...this.admission.takeAllQueued().map((p) => p.request)];
    for (const request of waiting) this.post({ type: 'failed', requestId: request.requestId, error: payload });
    this.active.clear();
    this.post({ type: 'engine_dead', error: payload });
  }
}
