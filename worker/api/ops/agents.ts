/**
 * The Agents API (docs: README "HTTP routes"): which agents' caches the server holds and where.
 * - `GET /v1/agents`: every agent, at the fastest tier holding it (`active`, `hot`, `ram`, `disk`).
 * - `GET /v1/agents/stats`: per-tier totals of that list, and the RAM and disk budgets.
 * - `GET /v1/agents/{id}`: one agent; 404 when no tier holds it.
 * - `DELETE /v1/agents/{id}`: forget it in every tier (its file deleted); `?evict_only=true` keeps
 *   (or first writes) its disk file. 409 ERR_CONFLICT while a request of the agent runs or waits.
 * The stats route is listed before `{id}`, so `stats` is never read as an agent id by GET (an agent
 * named `stats` can still be deleted, not inspected). The house error shape throughout.
 */
import type { EngineClient } from '../../engine-client.js';
import { checkAgentId } from '../../../shared/agent-id.js';
import { BadRequestError } from '../../../shared/errors.js';
import type { AgentEntry, AgentsOutcome, AgentTotals } from '../../../shared/protocol/messages.js';
import type { RequestContext, Route } from '../../http/router.js';

export type AgentsEngine = Pick<EngineClient, 'agents'>;

/** The wire form: snake_case, `last_used` in Unix seconds. */
export function toApiAgent(entry: AgentEntry): { id: string; tier: string; tokens: number | null; bytes: number; last_used: number } {
  return { id: entry.id, tier: entry.tier, tokens: entry.tokens, bytes: entry.bytes, last_used: Math.floor(entry.lastUsed / 1000) };
}

export function toApiTotals(totals: AgentTotals): Record<string, unknown> {
  const { ramBudgetBytes, diskBudgetBytes, ...tiers } = totals;
  return { object: 'agents.stats', ...tiers, budgets: { ram_bytes: ramBudgetBytes, disk_bytes: diskBudgetBytes } };
}

/** The `{id}` path segment, percent-decoded and checked by the same rules as X-Agent-ID. */
export function agentIdParam(raw: string | undefined): string {
  let id: string;
  try {
    id = decodeURIComponent(raw ?? '');
  } catch {
    throw new BadRequestError('the agent id in the path is not valid percent-encoding', 'id');
  }
  return checkAgentId(id, 'id');
}

/** `evict_only=true|1`; anything else but absent or `false|0` is a 400. */
export function evictOnlyParam(query: string): boolean {
  const value = new URLSearchParams(query).get('evict_only');
  if (value === null || value === 'false' || value === '0') return false;
  if (value === 'true' || value === '1') return true;
  throw new BadRequestError(`evict_only must be true or false; got ${JSON.stringify(value.slice(0, 20))}`, 'evict_only');
}

function expect<K extends AgentsOutcome['kind']>(outcome: AgentsOutcome, kind: K): Extract<AgentsOutcome, { kind: K }> {
  if (outcome.kind !== kind) throw new Error(`the engine answered ${outcome.kind} to an agents ${kind} request`);
  return outcome as Extract<AgentsOutcome, { kind: K }>;
}

async function list(context: RequestContext, engine: AgentsEngine): Promise<void> {
  const { agents } = expect(await engine.agents({ op: 'list' }), 'list');
  context.sendJson(200, { object: 'list', data: agents.map(toApiAgent) });
}

async function stats(context: RequestContext, engine: AgentsEngine): Promise<void> {
  context.sendJson(200, toApiTotals(expect(await engine.agents({ op: 'stats' }), 'stats').totals));
}

async function inspect(context: RequestContext, engine: AgentsEngine): Promise<void> {
  const agentId = agentIdParam(context.params.id);
  const [entry] = expect(await engine.agents({ op: 'get', agentId }), 'list').agents;
  if (entry === undefined) throw new Error('the engine answered an empty list to an agent get');
  context.sendJson(200, toApiAgent(entry));
}

async function remove(context: RequestContext, engine: AgentsEngine): Promise<void> {
  const agentId = agentIdParam(context.params.id);
  const evictOnly = evictOnlyParam(context.exchange.query);
  const { id, tiers } = expect(await engine.agents({ op: 'delete', agentId, evictOnly }), 'deleted');
  context.sendJson(200, { id, deleted: true, evict_only: evictOnly, tiers });
}

export function agentRoutes(engine: AgentsEngine): Route[] {
  const route = (method: Route['method'], path: string, handle: (context: RequestContext, engine: AgentsEngine) => Promise<void>): Route => ({
    method,
    path,
    handle: (context) => handle(context, engine),
  });
  return [route('GET', '/v1/agents', list), route('GET', '/v1/agents/stats', stats), route('GET', '/v1/agents/:id', inspect), route('DELETE', '/v1/agents/:id', remove)];
}
