/**
 * `GET /metrics`: Prometheus exposition of this process's metrics, the front's and the inference
 * thread's merged (worker/metrics/process-metrics.ts). Who may
 * scrape it is configuration (`metricsAccess`): public by default, because Prometheus inside a cluster
 * usually scrapes without credentials, but an operator exposing the port may require an API or admin key.
 * Under `semantic supervise` a scrape answers for the whole fleet (worker/process/fleet-scrape.ts), and
 * with this process's registry only when the supervisor gives no answer.
 */
import { Registry } from 'prom-client';
import type { ProcessMetrics } from '../../metrics/process-metrics.js';
import type { RouteAccess } from '../../http/access.js';
import type { Route } from '../../http/router.js';

/** The fleet's exposition, or undefined when it cannot be had (then: this process's). */
export type FleetMetricsSource = () => Promise<{ text: string; contentType: string } | undefined>;

export function metricsRoute(metrics: Pick<ProcessMetrics, 'text'>, access: RouteAccess, fleet?: FleetMetricsSource): Route {
  return {
    method: 'GET',
    path: '/metrics',
    access,
    servedWhileDraining: true,
    handle: async (context) => {
      const fleetExposition = await fleet?.();
      if (fleetExposition !== undefined) return context.exchange.respond(200, { 'Content-Type': fleetExposition.contentType }, fleetExposition.text);
      const body = await metrics.text();
      context.exchange.respond(200, { 'Content-Type': Registry.PROMETHEUS_CONTENT_TYPE }, body);
    },
  };
}
