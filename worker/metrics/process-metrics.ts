/**
 * This worker process's metrics, whole: the front's registry (worker/http/metrics.ts) and the inference
 * thread's (worker/engine/metrics.ts), pulled over the MessagePort when scraped. The thread answers
 * between steps, and its answer is the registry's own JSON, merged here with prom-client's static
 * `AggregatorRegistry.aggregate` (no node:cluster). The two registries share no series (where they share
 * a name, as `semantic_memory_used_bytes`, their labels differ), so the merge only concatenates.
 * A thread that cannot answer (stopped, starting, stuck past the timeout) leaves its metrics out of
 * that scrape: the front's still answer, and `semantic_scrape_inference_missing` says so.
 */
import { AggregatorRegistry, Counter, type MetricObjectWithValues, type MetricValue, type Registry } from 'prom-client';

export type MetricsJson = MetricObjectWithValues<MetricValue<string>>[];

/**
 * prom-client's default gauges that end in `_total`, which `promtool check metrics` rejects (only counters
 * may): the same counts are exposed by type, without the suffix (nodejs_active_handles, ...).
 */
const lintFailingDefaults = new Set(['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']);

/** A step is milliseconds to a few seconds on a CPU: a thread silent this long is not answering. */
const THREAD_TIMEOUT_MS = 5000;

export class ProcessMetrics {
  private readonly missing: Counter;

  constructor(
    private readonly front: Registry,
    private readonly thread: () => Promise<MetricsJson>,
    private readonly timeoutMs = THREAD_TIMEOUT_MS,
  ) {
    this.missing = new Counter({
      name: 'semantic_scrape_inference_missing_total',
      help: "Scrapes answered without the inference thread's metrics (it was stopped, starting, or did not answer in time).",
      registers: [front],
    });
  }

  /** This process's full metrics as prom-client JSON: what `/metrics` serialises, and what a supervisor aggregates. */
  async json(): Promise<MetricsJson> {
    return mergeMetrics(await this.parts()).getMetricsAsJSON();
  }

  /** The Prometheus text exposition of `json()`. */
  async text(): Promise<string> {
    return mergeMetrics(await this.parts()).metrics();
  }

  private async parts(): Promise<MetricsJson[]> {
    const inner = await this.threadOrNothing();
    if (inner === undefined) this.missing.inc();
    const own = (await this.front.getMetricsAsJSON()).filter((metric) => !lintFailingDefaults.has(metric.name));
    return inner === undefined ? [own] : [own, inner];
  }

  private async threadOrNothing(): Promise<MetricsJson | undefined> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<undefined>((resolve) => {
      timer = setTimeout(() => resolve(undefined), this.timeoutMs);
    });
    try {
      return await Promise.race([this.thread().catch(() => undefined), late]);
    } finally {
      clearTimeout(timer);
    }
  }
}

/** Metrics of one process's registries (or of several processes) as one registry: counters and histograms summed per label set, gauges by their `aggregator`. */
export function mergeMetrics(parts: MetricsJson[]): Registry {
  return AggregatorRegistry.aggregate(parts);
}
