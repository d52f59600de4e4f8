/**
 * The front's (main thread's) Prometheus registry (prom-client): HTTP requests, 429s by reason, cache
 * file write failures, this process's memory, and prom-client's process and event-loop metrics. The
 * request metrics are counted from the router's `onResponse` hook, so every route, the probes and the
 * 404s included, is counted once, with the route's pattern and a known method as labels (bounded
 * cardinality: clients choose paths and methods). The inference thread's metrics live in its own
 * registry (worker/engine/metrics.ts); worker/metrics/process-metrics.ts merges the two when scraped.
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { AnsweredRequest } from './router.js';
import type { DiskWrites } from '../disk-writes.js';
import { describeError, type ErrorCode, type ErrorDescription } from '../../shared/errors.js';
import { defaultBuckets, MEMORY_HELP } from '../../shared/metrics-buckets.js';

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
  private readonly durations: Histogram<'route'>;
  private readonly rejections = new Counter({
    name: 'semantic_admission_rejections_total',
    help: "429 answers by reason (the error code's metric label: queue_full, agent_queue_full, pool_exhausted, rate_limited).",
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });

  constructor(diskWrites?: Pick<DiskWrites, 'failures'>, buckets = defaultBuckets.httpDuration) {
    collectDefaultMetrics({ register: this.registry });
    this.durations = new Histogram({
      name: 'semantic_request_duration_seconds',
      help: 'Time from a request arriving to its response (a stream: its last event) ending, by route pattern.',
      labelNames: ['route'] as const,
      buckets,
      registers: [this.registry],
    });
    new Gauge({
      name: 'semantic_memory_used_bytes',
      help: MEMORY_HELP,
      labelNames: ['kind'] as const,
      registers: [this.registry],
      collect() {
        this.set({ kind: 'process' }, process.memoryUsage.rss());
      },
    });
    if (diskWrites !== undefined) this.countWriteFailures(diskWrites);
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
    if (answered.status === 429) this.rejections.inc({ reason: rejectionReason(answered.errorCode) });
  }
}

function rejectionReason(code: string | undefined): string {
  const described = code === undefined ? undefined : (describeError(code as ErrorCode) as ErrorDescription | undefined);
  return described?.metricLabel ?? 'unknown';
}
