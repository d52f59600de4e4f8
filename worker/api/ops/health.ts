/**
 * The three probes (docs/operations.md has the Kubernetes settings they imply):
 * - `/health/live`: the event loop runs (router.ts).
 * - `/health/startup`: 503 until the model is loaded and the engine ran its warm-up step, then 200.
 *   A slow model load must fail the startup probe, not the liveness probe (which would restart it).
 * - `/health/ready`: whether to send this process traffic now: 503 with a reason while starting,
 *   draining, swapping the model, with the KV pool above its threshold or the wait queue full; 200 with the figures,
 *   `status: "degraded"` and a reason while agents' cache files cannot be written (a full or read-only cache
 *   dir): turns are still served, so the process stays in rotation, but an operator should look.
 * All three are answered while the server drains: they report the drain, they are not refused by it.
 */
import type { EngineClient } from '../../engine-client.js';
import type { EngineStats } from '../../../shared/protocol/messages.js';
import type { RequestContext, Route, Router } from '../../http/router.js';

export interface ReadinessLimits {
  /** Requests that may wait; a full queue means new requests would get 429. */
  maxQueued: number;
  /** Percent of the KV pool reserved by running and queued requests above which the process is busy. */
  maxPoolPercent: number;
}

function notStarted(context: RequestContext, engine: EngineClient): void {
  const status = engine.state === 'starting' ? 'starting' : 'failed';
  const reason = engine.state === 'starting' ? 'the model is loading' : (engine.deathError?.message ?? 'the engine stopped');
  context.sendJson(503, { status, reason }, { 'Retry-After': '1' });
}

export function startupRoute(engine: EngineClient): Route {
  return {
    method: 'GET',
    path: '/health/startup',
    servedWhileDraining: true,
    access: 'public',
    handle: (context) => (engine.state === 'ready' ? context.sendJson(200, { status: 'started', model: engine.model?.id }) : notStarted(context, engine)),
  };
}

/** Blocks reserved by running and queued requests: idle agents' blocks are spilled on demand. */
export function poolUtilisation(stats: EngineStats): number {
  return stats.totalBlocks === 0 ? 0 : (stats.usedBlocks - stats.idleBlocks) / stats.totalBlocks;
}

function readiness(stats: EngineStats, limits: ReadinessLimits): { ready: boolean; reason?: string } {
  const utilisation = poolUtilisation(stats);
  if (utilisation * 100 > limits.maxPoolPercent) return { ready: false, reason: `KV pool ${(utilisation * 100).toFixed(0)}% reserved (limit ${limits.maxPoolPercent}%)` };
  if (limits.maxQueued > 0 && stats.queuedRequests >= limits.maxQueued) return { ready: false, reason: `wait queue full (${stats.queuedRequests} requests)` };
  return { ready: true };
}

export function readyRoute(engine: EngineClient, router: Pick<Router, 'draining' | 'inFlight'>, limits: ReadinessLimits): Route {
  return {
    method: 'GET',
    path: '/health/ready',
    servedWhileDraining: true,
    access: 'public',
    async handle(context) {
      if (engine.state !== 'ready') return notStarted(context, engine);
      if (router.draining !== undefined) return context.sendJson(503, { status: 'draining', reason: 'the server is shutting down' }, { 'Retry-After': '1' });
      // Requests arriving during a swap are held, not lost, but a balancer should prefer other workers.
      if (engine.swapping) return context.sendJson(503, { status: 'swapping', reason: 'the model is being swapped' }, { 'Retry-After': '1' });
      const stats = await engine.stats();
      const figures = {
        utilisation: Math.round(poolUtilisation(stats) * 1000) / 1000,
        queueDepth: stats.queuedRequests,
        activeAgents: stats.activeSequences,
        inFlight: router.inFlight(),
      };
      const { ready, reason } = readiness(stats, limits);
      const failing = engine.diskWrites.failing;
      if (ready && failing !== undefined) {
        const why = `agents' cache files cannot be written (${failing.reason}): ${failing.message}`;
        return context.sendJson(200, { status: 'degraded', reason: why, cacheWriteFailures: engine.diskWrites.failed, ...figures });
      }
      if (ready) return context.sendJson(200, { status: 'ready', ...figures });
      context.sendJson(503, { status: 'busy', reason, ...figures }, { 'Retry-After': '1' });
    },
  };
}
