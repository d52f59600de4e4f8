/**
 * `GET /metrics`: Prometheus exposition of this process's registry (worker/http/metrics.ts). Who may
 * scrape it is configuration (`metricsAccess`): public by default, because Prometheus inside a cluster
 * usually scrapes without credentials, but an operator exposing the port may require an API or admin key.
 */
import type { Registry } from 'prom-client';
import type { RouteAccess } from '../../http/access.js';
import type { Route } from '../../http/router.js';

export function metricsRoute(registry: Registry, access: RouteAccess): Route {
  return {
    method: 'GET',
    path: '/metrics',
    access,
    servedWhileDraining: true,
    handle: async (context) => {
      const body = await registry.metrics();
      context.exchange.respond(200, { 'Content-Type': registry.contentType }, body);
    },
  };
}
