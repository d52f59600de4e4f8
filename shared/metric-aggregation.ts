/**
 * How one scrape of a supervised fleet (`semantic supervise`) adds up its workers' metrics: which series
 * are summed over the workers and which keep one series per worker, with a `worker` label. The supervisor
 * applies it to each worker's metrics JSON (prom-client's `registry.getMetricsAsJSON()`) before prom-client's
 * `AggregatorRegistry.aggregate` merges them (supervisor/fleet-metrics.ts).
 *
 * The rule, by type:
 * - counters and histograms are summed: a request, a token or an observation happened in exactly one
 *   worker, so the fleet's count is the sum, and `rate()` / `histogram_quantile()` over the sum are right;
 * - summaries keep a series per worker: a sum of quantiles is no quantile (the product has none today);
 * - gauges keep a series per worker, unless listed in `summedGauges`. A gauge is a level inside one
 *   process, and most of them lie when summed: a ratio (KV pool utilisation: two workers at 0.6 are not
 *   at 1.2), a process's memory or event-loop lag (a sum hides the one worker that is about to be
 *   OOM-killed or stalls), a limit (max file descriptors), an info metric (model_info / build_info /
 *   nodejs_version_info: workers differ during a rolling restart or a model swap, and a sum of 1s is a
 *   count of workers, not a version), a start time, and the disk tier's files and bytes (one cache folder
 *   that every worker counts: a sum counts each file once per worker). With the label, PromQL still sums
 *   them when a sum is meant (`sum without (worker) (...)`), while a sum could never be split again.
 *   A gauge this list does not know is per-worker: the safe side, since only a sum can lie.
 *
 * prom-client's own `aggregator` settings on its default metrics (average for the event-loop lag
 * percentiles, omit for process_start_time_seconds, first for nodejs_version_info) are replaced by this
 * rule: an average of p99 lags is no p99 (prom-client's README says as much), and a start time is what
 * shows a worker restarted. A per-worker series is aggregated with `first`: two processes share a slot
 * only while a rolling restart hands it over, and the caller lists the slot's current process first.
 */

/** A metric as `registry.getMetricsAsJSON()` gives it, after a trip over IPC (JSON). */
export interface MetricFamilyJson {
  name: string;
  help: string;
  /** prom-client writes the type as text: counter, gauge, histogram or summary. */
  type: string;
  aggregator: string;
  values: MetricSampleJson[];
}

export interface MetricSampleJson {
  value: number;
  labels: Record<string, string | number>;
  /** A histogram's `_bucket` / `_sum` / `_count` series. */
  metricName?: string;
}

/** The label that tells a worker's series apart: its slot, 0 to workers - 1 (bounded, unlike a pid). */
export const workerLabel = 'worker';

/**
 * Gauges whose sum over the workers is the fleet's value: each counts requests, which are in exactly one
 * worker, so the sum is the fleet's backlog or load (what an autoscaler or an alert wants).
 */
export const summedGauges: ReadonlyMap<string, string> = new Map([
  ['semantic_request_queue_depth', 'requests waiting in a worker are waiting nowhere else: the fleet backlog is the sum'],
  ['semantic_num_requests_waiting', 'as semantic_request_queue_depth (the vLLM name)'],
  ['semantic_num_requests_running', 'a running request runs in one worker: the fleet load is the sum'],
  ['semantic_request_queue_limit', "each worker queues up to its own limit: the fleet's room is the sum, what the summed depth is measured against"],
  ['semantic_agents_active', 'an agent decodes in one worker at a time: the fleet count is the sum'],
]);

export type Aggregation = 'sum' | 'per-worker';

/** How `family` is aggregated over workers (the rule above). */
export function aggregationOf(family: Pick<MetricFamilyJson, 'name' | 'type'>): Aggregation {
  if (family.type === 'counter' || family.type === 'histogram') return 'sum';
  if (family.type === 'gauge' && summedGauges.has(family.name)) return 'sum';
  return 'per-worker';
}

/**
 * One worker's metrics, ready for `AggregatorRegistry.aggregate`: per-worker families get
 * `worker="<worker>"` on every sample and the `first` aggregator, summed ones the `sum` aggregator.
 */
export function prepareForAggregation(families: readonly MetricFamilyJson[], worker: string): MetricFamilyJson[] {
  return families.map((family) => {
    if (aggregationOf(family) === 'sum') return { ...family, aggregator: 'sum' };
    const values = family.values.map((sample) => ({ ...sample, labels: { ...sample.labels, [workerLabel]: worker } }));
    return { ...family, aggregator: 'first', values };
  });
}
