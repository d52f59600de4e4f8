// The fleet scrape's aggregation rule (shared/metric-aggregation.ts) through prom-client's own
// AggregatorRegistry.aggregate, on two real registries: counters and histograms summed exactly, gauges
// per worker unless a sum is their fleet value, prom-client's own aggregators (omit, average) overruled.
import t from 'tap';
import { AggregatorRegistry, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { aggregationOf, prepareForAggregation, workerLabel, type MetricFamilyJson } from '../../shared/metric-aggregation.js';

function workerRegistry(requests: number, observations: number[], lag: number): Registry {
  const registry = new Registry();
  new Counter({ name: 'semantic_request_total', help: 'h', labelNames: ['route'], registers: [registry] }).inc({ route: '/v1/chat/completions' }, requests);
  const histogram = new Histogram({ name: 'semantic_time_to_first_token_seconds', help: 'h', buckets: [0.1, 1], registers: [registry] });
  for (const seconds of observations) histogram.observe(seconds);
  new Gauge({ name: 'semantic_request_queue_depth', help: 'h', registers: [registry] }).set(requests);
  new Gauge({ name: 'nodejs_eventloop_lag_p99_seconds', help: 'h', aggregator: 'average', registers: [registry] }).set(lag);
  new Gauge({ name: 'process_start_time_seconds', help: 'h', aggregator: 'omit', registers: [registry] }).set(1000 + lag);
  return registry;
}

async function aggregate(registries: Registry[]): Promise<string> {
  const prepared = await Promise.all(
    registries.map(async (registry, worker) => prepareForAggregation((await registry.getMetricsAsJSON()) as unknown as MetricFamilyJson[], String(worker))),
  );
  return (AggregatorRegistry.aggregate(prepared as unknown as Parameters<typeof AggregatorRegistry.aggregate>[0]) as Registry).metrics();
}

t.test('counters and histograms are summed, gauges keep a worker label unless listed as summed', async (t) => {
  const text = await aggregate([workerRegistry(3, [0.05, 0.5], 0.01), workerRegistry(4, [2], 0.2)]);
  t.match(text, /^semantic_request_total\{route="\/v1\/chat\/completions"\} 7$/m, 'counter: 3 + 4');
  t.match(text, /^semantic_time_to_first_token_seconds_bucket\{le="0\.1"\} 1$/m);
  t.match(text, /^semantic_time_to_first_token_seconds_bucket\{le="1"\} 2$/m);
  t.match(text, /^semantic_time_to_first_token_seconds_bucket\{le="\+Inf"\} 3$/m);
  t.match(text, /^semantic_time_to_first_token_seconds_count 3$/m);
  t.match(text, /^semantic_time_to_first_token_seconds_sum 2\.55$/m);
  t.match(text, /^semantic_request_queue_depth 7$/m, 'a summed gauge: the fleet backlog');
  t.match(text, /^nodejs_eventloop_lag_p99_seconds\{worker="0"\} 0\.01$/m, 'lag per worker, not the average of p99s');
  t.match(text, /^nodejs_eventloop_lag_p99_seconds\{worker="1"\} 0\.2$/m);
  t.match(text, /^process_start_time_seconds\{worker="1"\} 1000\.2$/m, "prom-client's omit is overruled: each worker's start time shows");
  t.notMatch(text, /semantic_request_total\{[^}]*worker=/, 'no worker label on a sum');
});

t.test('the rule by type; a gauge it does not know is per worker', async (t) => {
  t.equal(aggregationOf({ name: 'anything_total', type: 'counter' }), 'sum');
  t.equal(aggregationOf({ name: 'x_seconds', type: 'histogram' }), 'sum');
  t.equal(aggregationOf({ name: 'x_seconds', type: 'summary' }), 'per-worker');
  t.equal(aggregationOf({ name: 'semantic_pool_utilization_ratio', type: 'gauge' }), 'per-worker');
  t.equal(aggregationOf({ name: 'semantic_num_requests_running', type: 'gauge' }), 'sum');
  const [family] = prepareForAggregation([{ name: 'g', help: 'h', type: 'gauge', aggregator: 'sum', values: [{ value: 1, labels: { kind: 'kv' } }] }], '5');
  t.same(family, { name: 'g', help: 'h', type: 'gauge', aggregator: 'first', values: [{ value: 1, labels: { kind: 'kv', [workerLabel]: '5' } }] });
});
