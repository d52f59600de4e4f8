// The merge of one process's registries: the front's and the inference thread's (prom-client JSON, as
// it crosses the MessagePort) become one exposition; a thread that fails or does not answer in time is
// left out of that scrape and counted, and the scrape still answers.
import t from 'tap';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { mergeMetrics, ProcessMetrics, type MetricsJson } from '../../worker/metrics/process-metrics.js';
import { parseExposition, sample } from '../helpers/exposition.js';

function frontRegistry(): Registry {
  const front = new Registry();
  new Counter({ name: 'semantic_request_total', help: 'h', labelNames: ['status'], registers: [front] }).inc({ status: '200' }, 3);
  new Gauge({ name: 'semantic_memory_used_bytes', help: 'h', labelNames: ['kind'], registers: [front] }).set({ kind: 'process' }, 100);
  new Gauge({ name: 'nodejs_active_handles_total', help: 'a gauge promtool rejects', registers: [front] }).set(4);
  return front;
}

async function threadJson(): Promise<MetricsJson> {
  const thread = new Registry();
  new Gauge({ name: 'semantic_memory_used_bytes', help: 'h', labelNames: ['kind'], registers: [thread] }).set({ kind: 'kv' }, 7);
  const ttft = new Histogram({ name: 'semantic_time_to_first_token_seconds', help: 'h', buckets: [0.1, 1], registers: [thread] });
  ttft.observe(0.05);
  ttft.observe(0.5);
  // As it crosses the MessagePort: JSON text.
  return JSON.parse(JSON.stringify(await thread.getMetricsAsJSON())) as MetricsJson;
}

t.test("the thread's series join the front's: one family per name, each series kept", async (t) => {
  const metrics = new ProcessMetrics(frontRegistry(), threadJson);
  const samples = parseExposition(await metrics.text());
  t.equal(sample(samples, 'semantic_request_total', { status: '200' }), 3);
  t.equal(sample(samples, 'semantic_memory_used_bytes', { kind: 'process' }), 100);
  t.equal(sample(samples, 'semantic_memory_used_bytes', { kind: 'kv' }), 7);
  t.equal(sample(samples, 'semantic_time_to_first_token_seconds_bucket', { le: '0.1' }), 1);
  t.equal(sample(samples, 'semantic_time_to_first_token_seconds_bucket', { le: '+Inf' }), 2);
  t.equal(sample(samples, 'semantic_time_to_first_token_seconds_count'), 2);
  t.equal(sample(samples, 'semantic_scrape_inference_missing_total'), 0);
  t.equal(sample(samples, 'nodejs_active_handles_total'), undefined, "prom-client's _total gauges are left out");
  const json = await metrics.json();
  t.equal(json.filter((metric) => metric.name === 'semantic_memory_used_bytes').length, 1, 'one family');
});

t.test('the same series from two processes add up (counters and histograms summed)', async (t) => {
  const merged = mergeMetrics([await threadJson(), await threadJson()]);
  const samples = parseExposition(await merged.metrics());
  t.equal(sample(samples, 'semantic_time_to_first_token_seconds_count'), 4);
  t.equal(sample(samples, 'semantic_time_to_first_token_seconds_sum'), 1.1);
});

t.test('a thread that fails or is late is left out and counted; the scrape answers', async (t) => {
  const failing = new ProcessMetrics(frontRegistry(), () => Promise.reject(new Error('engine stopped')));
  let samples = parseExposition(await failing.text());
  t.equal(sample(samples, 'semantic_request_total', { status: '200' }), 3);
  t.equal(sample(samples, 'semantic_memory_used_bytes', { kind: 'kv' }), undefined);
  t.equal(sample(samples, 'semantic_scrape_inference_missing_total'), 1);
  const late = new ProcessMetrics(frontRegistry(), () => new Promise(() => undefined), 20);
  await late.text();
  samples = parseExposition(await late.text());
  t.equal(sample(samples, 'semantic_scrape_inference_missing_total'), 2, 'one per scrape without the thread');
});
