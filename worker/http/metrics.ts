/**
 * This process's Prometheus registry (prom-client), served by `GET /metrics` (worker/api/ops/metrics.ts).
 * The request metrics are counted from the router's `onResponse` hook, so every route, the probes and
 * the 404s included, is counted once, with the route's pattern and a known method as labels (bounded
 * cardinality: clients choose paths and methods).
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { AnsweredRequest } from './router.js';
import type { EngineStats } from '../../shared/protocol/messages.js';
import type { DiskWrites } from '../disk-writes.js';

/** The OpenTelemetry HTTP server duration advice, in seconds, from 5 ms. */
const durationBuckets = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 30, 60, 120];

/** Methods are any token a client sends: anything but the standard ones is counted as OTHER. */
const knownMethods = new Set(['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS']);

export class HttpMetrics {
  readonly registry = new Registry();
  private readonly requests = new Counter({
    name: 'semantic_request_total',
    help: 'HTTP requests answered, by route pattern, method and status (0: the client left before a status).',
    labelNames: ['route', 'method', 'status'] as const,
    registers: [this.registry],
  });
  private readonly durations = new Histogram({
    name: 'semantic_request_duration_seconds',
    help: 'Time from a request arriving to its response (a stream: its last event) ending, by route pattern.',
    labelNames: ['route'] as const,
    buckets: durationBuckets,
    registers: [this.registry],
  });

  /**
   * The engine's memory, read from the inference thread when scraped: the very counts `/debug/engine`
   * and `/v1/agents/stats` report (the RAM tier: every entry's cells and logits row, each shared
   * segment once), so the three never disagree.
   */
  constructor(engineStats?: () => Promise<Pick<EngineStats, 'ramBytes'>>, diskWrites?: Pick<DiskWrites, 'failures'>) {
    collectDefaultMetrics({ register: this.registry });
    if (diskWrites !== undefined) this.countWriteFailures(diskWrites);
    if (engineStats === undefined) return;
    new Gauge({
      name: 'semantic_memory_used_bytes',
      help: "Memory held by kind: ram_tier is the idle agents' states (and logits rows) in the RAM tier.",
      labelNames: ['kind'] as const,
      registers: [this.registry],
      async collect() {
        const stats = await engineStats().catch(() => undefined); // a stopped or swapping engine: the last value stays
        if (stats !== undefined) this.set({ kind: 'ram_tier' }, stats.ramBytes);
      },
    });
  }

  /** Counted where the failures are learnt (disk-writes.ts), read when scraped. */
  private countWriteFailures(diskWrites: Pick<DiskWrites, 'failures'>): void {
    new Counter({
      name: 'semantic_cache_persist_failures_total',
      help: "Agents' cache file writes that failed, by reason: an errno code (ENOSPC, EROFS, ...), ERR_WRITER_EXITED (the file thread died) or unknown.",
      labelNames: ['reason'] as const,
      registers: [this.registry],
      collect() {
        this.reset();
        for (const [reason, count] of diskWrites.failures) this.inc({ reason }, count);
      },
    });
  }

  observe(answered: AnsweredRequest): void {
    const method = knownMethods.has(answered.method) ? answered.method : 'OTHER';
    this.requests.inc({ route: answered.route, method, status: String(answered.status) });
    this.durations.observe({ route: answered.route }, answered.seconds);
  }
}
