/**
 * One scrape for the whole fleet. A scrape of GET /metrics reaches one worker (the supervisor hands
 * connections out in turn); that worker asks the supervisor (`metrics_request`), which asks every ready
 * worker for its metrics JSON (`collect_metrics`), waits for them up to the scrape timeout, aggregates
 * them with prom-client's static `AggregatorRegistry.aggregate` (by the rule of shared/metric-aggregation.ts)
 * and appends its own metrics. Not `AggregatorRegistry.clusterMetrics()`: that needs node:cluster, and one
 * silent worker fails the whole scrape there. Here a worker that does not answer in time (stopped,
 * stalled, exiting) is counted in `semantic_scrape_workers_missing` and the scrape still answers with
 * the others, so a dashboard loses one worker's series rather than the fleet's.
 *
 * A worker that exits takes its counters out of the sum: Prometheus reads the drop as a counter reset
 * (`rate()` copes; an absolute `increase()` over the restart undercounts by what the worker had counted).
 */
import { AggregatorRegistry, Counter, Gauge, Registry } from 'prom-client';
import type { Logger } from 'pino';
import { prepareForAggregation, type MetricFamilyJson } from '../shared/metric-aggregation.js';

/** Why a worker's report is not in a scrape. */
export type MissedReport = 'timeout' | 'exited' | 'unsent';

/** A worker as a fleet scrape sees it. */
export interface MetricsSource {
  readonly slot: number;
  readonly pid: number | undefined;
  /** Its metrics, or why they did not come within `timeoutMs`. */
  collectMetrics(timeoutMs: number): Promise<MetricFamilyJson[] | MissedReport>;
}

export interface FleetCounts {
  /** Worker processes running, a rolling restart's replacement included. */
  alive(): number;
  /** Slots whose worker is ready. */
  ready(): number;
  /** Slots given up on (a crash loop): no worker, none to be restarted, until a rolling restart. */
  crashLooping(): number;
}

export interface FleetExposition {
  text: string;
  contentType: string;
}

export class FleetMetrics {
  private readonly registry = new Registry();
  private readonly restarts = this.counter('semantic_worker_restarts_total', 'Workers started again after an unexpected exit (the restart policy allowed it).');
  private readonly drains = this.counter(
    'semantic_worker_drains_total',
    'Workers asked to drain, by mode: shutdown (the supervisor stops) or handover (a rolling restart replaced them).',
    ['mode'] as const,
  );
  private readonly drainsCut = this.counter(
    'semantic_worker_drains_cut_total',
    'Worker drains that did not run to their end (the worker exited other than 0: --drain-timeout passed, a second signal, a kill), by mode.',
    ['mode'] as const,
  );
  private readonly swaps = this.counter(
    'semantic_fleet_model_swap_total',
    'Admin model swaps of the fleet (a rolling restart onto the new model), by result: ok, or rolled_back (a replacement never got ready, or the model could not be read; the old model serves).',
    ['result'] as const,
  );
  private readonly missed = this.counter(
    'semantic_scrape_missed_reports_total',
    "Workers' metrics missing from fleet scrapes, by reason: timeout (no answer within the scrape timeout), exited (it exited while asked), unsent (its IPC channel was closed).",
    ['reason'] as const,
  );

  /** A counter in this registry (the supervisor's own series). */
  private counter<L extends string = never>(name: string, help: string, labelNames: readonly L[] = []): Counter<L> {
    return new Counter({ name, help, labelNames, registers: [this.registry] });
  }

  constructor(
    counts: FleetCounts,
    private readonly log: Logger,
  ) {
    // Every label value at 0 from the start, so that an alert's increase() sees the first cut or failed swap.
    for (const mode of ['shutdown', 'handover']) this.drainsCut.inc({ mode }, 0);
    for (const result of ['ok', 'rolled_back']) this.swaps.inc({ result }, 0);
    new Gauge({
      name: 'semantic_workers_alive',
      help: "Worker processes running, a rolling restart's replacement included.",
      registers: [this.registry],
      collect() {
        this.set(counts.alive());
      },
    });
    new Gauge({
      name: 'semantic_workers_crash_looping',
      help: 'Worker slots in a crash loop: not restarted any more (a rolling restart, SIGHUP, tries them again).',
      registers: [this.registry],
      collect() {
        this.set(counts.crashLooping());
      },
    });
    new Gauge({
      name: 'semantic_workers_ready',
      help: 'Worker slots whose process is ready to serve.',
      registers: [this.registry],
      collect() {
        this.set(counts.ready());
      },
    });
  }

  countRestart(): void {
    this.restarts.inc();
  }

  countDrain(mode: string): void {
    this.drains.inc({ mode });
  }

  countDrainCut(mode: string): void {
    this.drainsCut.inc({ mode });
  }

  countSwap(result: 'ok' | 'rolled_back'): void {
    this.swaps.inc({ result });
  }

  /**
   * The fleet's exposition: every source's metrics aggregated, then the supervisor's own. `sources` go
   * in the order a per-worker series keeps: for a slot shared during a handover, the current process first.
   */
  async scrape(sources: readonly MetricsSource[], timeoutMs: number): Promise<FleetExposition> {
    this.log.debug({ workers: sources.map((source) => source.slot) }, 'fleet scrape: asking the workers for their metrics');
    const reports = await Promise.all(sources.map((source) => source.collectMetrics(timeoutMs)));
    const families: MetricFamilyJson[][] = [];
    const missing: { worker: number; pid: number | undefined; reason: MissedReport }[] = [];
    for (const [index, report] of reports.entries()) {
      const source = sources[index]!;
      if (typeof report === 'string') missing.push({ worker: source.slot, pid: source.pid, reason: report });
      else families.push(prepareForAggregation(report, String(source.slot)));
    }
    for (const { reason } of missing) this.missed.inc({ reason });
    if (missing.length > 0) this.log.warn({ missing, timeoutMs }, 'fleet scrape: answered without some workers');
    const aggregated = AggregatorRegistry.aggregate(families as unknown as Parameters<typeof AggregatorRegistry.aggregate>[0]) as Registry;
    const merged = Registry.merge([aggregated, this.registry, scrapeRegistry(missing.length)]);
    return { text: await merged.metrics(), contentType: merged.contentType };
  }
}

/** This scrape's own gauge, in a registry of its own: concurrent scrapes each report their own count. */
function scrapeRegistry(missing: number): Registry {
  const registry = new Registry();
  const gauge = new Gauge({
    name: 'semantic_scrape_workers_missing',
    help: 'Ready workers whose metrics are missing from this scrape (no answer within the scrape timeout, or exited while asked); their series are absent from it.',
    registers: [registry],
  });
  gauge.set(missing);
  return registry;
}
