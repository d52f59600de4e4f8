/** `GET /debug/engine`: the engine's own counters (sequences, queue, KV cells, steps), like llama-server's /slots; admin key. */
import type { EngineClient } from '../../engine-client.js';
import type { Route } from '../../http/router.js';

export function engineStatsRoute(engine: Pick<EngineClient, 'stats'>): Route {
  return {
    method: 'GET',
    path: '/debug/engine',
    access: 'admin',
    handle: async (context) => context.sendJson(200, await engine.stats()),
  };
}
