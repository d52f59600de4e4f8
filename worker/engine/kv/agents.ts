/**
 * The Agents API on the inference thread: which agents the tiers hold (each at its fastest tier),
 * their totals, and forgetting or evicting one. Its operations touch the context (a state size, a
 * sequence freed, a state exported), so the engine runs them between steps (`DeferredOps`), never
 * during a decode.
 *
 * Listed: agents with a running request (`active`), then the hot, RAM and disk tiers. An agent whose
 * request waits in the admission queue has its hot cells pinned to that request, outside the hot
 * tier: it is listed only if a RAM or disk tier also holds it (the queue is short-lived).
 */
import type { Context } from '../addon.js';
import type { AgentTiers } from './tiers.js';
import { ErrorCode, SemanticError } from '../../../shared/errors.js';
import type { AgentEntry, AgentTier, AgentTotals, AgentsOutcome, AgentsRequestMessage, CacheTierName, ClearedCounts, TierTotals } from '../../../shared/protocol/messages.js';

/** What the engine lends the Agents API for one operation. */
export interface AgentSources {
  tiers: Pick<AgentTiers, 'hot' | 'ram' | 'disk' | 'evict' | 'forget' | 'clear'>;
  context: Pick<Context, 'stateSeqSize'>;
  /** Running requests' sequences. */
  active: Iterable<{ agentId: string; seqId: number; usedCells: number }>;
  /** A request of the agent is submitted, queued or running: it may not be deleted now. */
  isBusy(agentId: string): boolean;
  now(): number;
}

/** Every agent held, fastest tier first, each listed once (at the fastest tier that holds it). */
export function listAgents(sources: AgentSources): AgentEntry[] {
  const { tiers, context } = sources;
  const byId = new Map<string, AgentEntry>();
  const add = (entry: AgentEntry): void => void (byId.has(entry.id) || byId.set(entry.id, entry));
  for (const { agentId, seqId, usedCells } of sources.active) {
    add({ id: agentId, tier: 'active', tokens: usedCells, bytes: context.stateSeqSize(seqId), lastUsed: sources.now() });
  }
  for (const hot of tiers.hot.entries()) {
    add({ id: hot.agentId, tier: 'hot', tokens: hot.tokens.length, bytes: context.stateSeqSize(hot.seqId), lastUsed: hot.usedAt });
  }
  for (const saved of tiers.ram.values()) {
    add({ id: saved.agentId, tier: 'ram', tokens: saved.tokens.length, bytes: saved.own.byteLength + saved.logits.byteLength, lastUsed: saved.usedAt });
  }
  for (const file of tiers.disk?.entries() ?? []) {
    add({ id: file.agentId, tier: 'disk', tokens: file.tokens ?? null, bytes: file.bytes, lastUsed: file.lastUsed });
  }
  return [...byId.values()];
}

const zero = (): TierTotals => ({ agents: 0, tokens: 0, bytes: 0 });

/** Sums of a listing by tier: each agent counted once, at its fastest tier (unknown token counts as 0). */
export function agentTotals(entries: readonly AgentEntry[], budgets: { ram: number; disk: number }): AgentTotals {
  const totals = { active: zero(), hot: zero(), ram: zero(), disk: zero(), ramBudgetBytes: budgets.ram, diskBudgetBytes: budgets.disk };
  for (const entry of entries) {
    const sum = totals[entry.tier];
    sum.agents++;
    sum.tokens += entry.tokens ?? 0;
    sum.bytes += entry.bytes;
  }
  return totals;
}

/** The totals, with the RAM and disk tiers' shared prefixes counted once (each agent lists only its own cells). */
function tierTotals(agents: AgentEntry[], tiers: AgentSources['tiers']): AgentTotals {
  const totals = agentTotals(agents, { ram: tiers.ram.budgetBytes, disk: tiers.disk?.budgetBytes ?? 0 });
  totals.ram.bytes += tiers.ram.sharedBytes;
  totals.disk.bytes += tiers.disk?.sharedBytes ?? 0;
  return totals;
}

/** Runs one Agents API request; throws ERR_NOT_FOUND (no tier holds the agent) or ERR_CONFLICT (a request of it is in flight). */
export async function runAgentsOp(request: AgentsRequestMessage, sources: AgentSources): Promise<AgentsOutcome> {
  const agents = listAgents(sources);
  if (request.op === 'list') return { kind: 'list', agents };
  if (request.op === 'stats') return { kind: 'stats', totals: tierTotals(agents, sources.tiers) };
  const id = request.agentId ?? '';
  const entry = agents.find((agent) => agent.id === id);
  if (entry === undefined) throw new SemanticError(ErrorCode.NotFound, `No tier holds agent ${id}.`);
  if (request.op === 'get') return { kind: 'list', agents: [entry] };
  if (sources.isBusy(id)) throw new SemanticError(ErrorCode.Conflict, `Agent ${id} is busy: a request of it is running or waiting.`);
  const tiers: AgentTier[] = request.evictOnly === true ? await sources.tiers.evict(id) : await sources.tiers.forget(id);
  return { kind: 'deleted', id, tiers };
}

/**
 * The admin API's cache clear: every idle agent held by a tier leaves the tiers named (AgentTiers.clear);
 * agents with a request running or waiting are left alone and listed. Counts are per tier left.
 */
export async function clearIdleCaches(tiers: readonly CacheTierName[], sources: AgentSources): Promise<{ cleared: ClearedCounts; skipped: string[] }> {
  const { hot, ram, disk } = sources.tiers;
  const ids = new Set<string>([...sources.active].map((sequence) => sequence.agentId));
  for (const entry of hot.entries()) ids.add(entry.agentId);
  for (const saved of ram.values()) ids.add(saved.agentId);
  for (const file of disk?.entries() ?? []) ids.add(file.agentId);
  const wanted = new Set(tiers);
  const cleared: ClearedCounts = { hot: 0, ram: 0, disk: 0 };
  const skipped: string[] = [];
  for (const id of ids) {
    if (sources.isBusy(id)) skipped.push(id);
    else for (const tier of await sources.tiers.clear(id, wanted)) cleared[tier]++;
  }
  return { cleared, skipped };
}

/**
 * Operations deferred to the engine's next step boundary, the only time the context may be touched
 * outside a decode; each settles the promise `defer` returned.
 */
export class DeferredOps {
  private waiting: (() => Promise<void>)[] = [];

  get pending(): boolean {
    return this.waiting.length > 0;
  }

  defer<T>(operation: () => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.waiting.push(() => operation().then(resolve, reject));
    });
  }

  async runAll(): Promise<void> {
    for (const operation of this.waiting.splice(0)) await operation();
  }
}
