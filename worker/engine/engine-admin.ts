/**
 * The engine's operator side, kept apart from the step loop in engine.ts: its counters (EngineStats),
 * the Agents API, the admin API's cache clear, and the runtime limits it changes without a restart. Limits live in the engine's
 * settings object, which the scheduler reads at every step and admission at every request, so a
 * change applies from the next step boundary; requests already queued or running keep their place.
 */
import type { Admission } from './admission.js';
import type { QueueBudget } from './queue-budget.js';
import type { Context } from './addon.js';
import type { AgentTurns } from './agent-turns.js';
import { clearIdleCaches, runAgentsOp, type AgentSources, type DeferredOps } from './kv/agents.js';
import type { AgentTiers } from './kv/tiers.js';
import type { EngineSettings } from './settings.js';
import { BadRequestError } from '../../shared/errors.js';
import type { AgentsOutcome, AgentsRequestMessage, CacheTierName, ClearedCounts, EngineStats, RuntimeLimits, StepTimings } from '../../shared/protocol/messages.js';

export interface LimitsUpdate {
  batchTokens?: number | undefined;
  maxQueued?: number | undefined;
  maxQueuedTokens?: number | undefined;
}

export function limitsOf(settings: EngineSettings): RuntimeLimits {
  const { batchTokens, maxBatchTokens, maxQueued, maxQueuedTokens } = settings;
  return { batchTokens, maxBatchTokens, maxQueued, maxQueuedTokens };
}

/**
 * Applies the fields given (none: a read) and returns the limits now in force. The batch budget
 * cannot exceed the context's n_batch, fixed when the context was created: 400 naming the field and
 * the maximum, with nothing changed.
 */
export function applyLimits(update: LimitsUpdate, settings: EngineSettings, queue: Pick<QueueBudget, 'setLimits'>): RuntimeLimits {
  const { batchTokens, maxQueued, maxQueuedTokens } = update;
  if (batchTokens !== undefined && batchTokens > settings.maxBatchTokens) {
    throw new BadRequestError(
      `batch_tokens must be at most ${settings.maxBatchTokens} (the context's batch size, set at start by --batch-tokens); got ${batchTokens}`,
      'batch_tokens',
    );
  }
  if (batchTokens !== undefined) settings.batchTokens = batchTokens;
  if (maxQueued !== undefined) settings.maxQueued = maxQueued;
  if (maxQueuedTokens !== undefined) settings.maxQueuedTokens = maxQueuedTokens;
  queue.setLimits({ maxQueued: settings.maxQueued, maxQueuedTokens: settings.maxQueuedTokens });
  return limitsOf(settings);
}

/** What the engine lends its admin side: its parts themselves, read at each call. */
export interface EngineParts {
  settings: EngineSettings;
  context: Context;
  /** Running requests' sequences, by request id. */
  active: ReadonlyMap<string, { agentId: string; seqId: number; usedCells: number }>;
  admission: Pick<Admission<unknown>, 'pool' | 'freeSequences'>;
  /** Everything waiting: behind its agent's turn or in admission's queue. */
  queue: QueueBudget;
  tiers: AgentTiers;
  turns: Pick<AgentTurns, 'isBusy'>;
  /** Operations run at the next step boundary, the only time the context may be touched. */
  agentOps: DeferredOps;
  counts: Pick<EngineStats, 'steps' | 'sampledTokens' | 'multiSequenceSteps'>;
  stepTimes: Omit<StepTimings, 'native'>;
  /** Starts the step loop if it is not running (a deferred operation waits for a boundary). */
  kick(): void;
}

export class EngineAdmin {
  constructor(private readonly parts: EngineParts) {}

  stats(): EngineStats {
    const { tiers, admission, queue, active } = this.parts;
    let usedCells = tiers.hot.cells;
    for (const sequence of active.values()) usedCells += sequence.usedCells;
    const { pool } = admission;
    return {
      activeSequences: active.size,
      idleSequences: tiers.hot.size,
      freeSequences: admission.freeSequences,
      queuedRequests: queue.size,
      usedCells,
      totalCells: this.parts.settings.contextSize,
      blockSize: pool.blockSize,
      usedBlocks: pool.usedBlocks,
      idleBlocks: tiers.spillableBlocks,
      totalBlocks: pool.totalBlocks,
      ramAgents: tiers.ram.size,
      ramBytes: tiers.ram.bytes,
      ...this.parts.counts,
      timings: { ...this.parts.stepTimes, native: this.parts.context.timings() },
    };
  }

  /** The runtime limits in force now. */
  limits(): RuntimeLimits {
    return limitsOf(this.parts.settings);
  }

  /** Runtime limits: read, or changed from the next step on (applyLimits). */
  configure(update: LimitsUpdate): RuntimeLimits {
    return applyLimits(update, this.parts.settings, this.parts.queue);
  }

  /** The Agents API (kv/agents.ts), run at the next step boundary; rejects with a coded error. */
  agents(request: AgentsRequestMessage): Promise<AgentsOutcome> {
    return this.atBoundary(() => runAgentsOp(request, this.sources()));
  }

  /** Idle agents leave the tiers named; agents with a request in flight are skipped (kv/agents.ts). */
  clearCaches(tiers: readonly CacheTierName[]): Promise<{ cleared: ClearedCounts; skipped: string[] }> {
    return this.atBoundary(() => clearIdleCaches(tiers, this.sources()));
  }

  /** A dead engine never runs it: the front refuses requests once the engine is dead. */
  private atBoundary<T>(operation: () => Promise<T>): Promise<T> {
    const outcome = this.parts.agentOps.defer(operation);
    this.parts.kick();
    return outcome;
  }

  private sources(): AgentSources {
    const { tiers, context, active, turns } = this.parts;
    return { tiers, context, active: active.values(), isBusy: (id) => turns.isBusy(id), now: Date.now };
  }
}
