/**
 * `GET /metrics`: Prometheus exposition of this process's metrics, the front's and the inference
 * thread's merged (worker/metrics/process-metrics.ts). Who may
 * scrape it is configuration (`metricsAccess`): public by default, because Prometheus inside a cluster
 * usually scrapes without credentials, but an operator exposing the port may require an API or admin key.
 */
import { Registry } from 'prom-client';
import type { ProcessMetrics } from '../../metrics/process-metrics.js';
import type { RouteAccess } from '../../http/access.js';
import type { Route } from '../../http/router.js';

export function metricsRoute(metrics: Pick<ProcessMetrics, 'text'>, access: RouteAccess): Route {
  return {
    method: 'GET',
    path: '/metrics',
    access,
    servedWhileDraining: true,
    handle: async (context) => {
      const body = await metrics.text();
      context.exchange.respond(200, { 'Content-Type': Registry.PROMETHEUS_CONTENT_TYPE }, body);
    },
  };
}
