// The `metricsBuckets` option: the defaults are OTel GenAI's boundaries extended as vLLM extends them,
// a family given in JSON replaces its defaults, and bad text is refused with the family and the problem.
import t from 'tap';
import { defaultBuckets, parseMetricsBuckets } from '../../shared/metrics-buckets.js';
import { loadConfig } from '../../shared/config.js';

t.test('the defaults start with the OpenTelemetry GenAI boundaries and extend them like vLLM', async (t) => {
  const otelTtft = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10];
  const otelTpot = [0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 2.5];
  t.same(defaultBuckets.timeToFirstToken.slice(0, 16), otelTtft);
  t.equal(defaultBuckets.timeToFirstToken.at(-1), 2560);
  t.same(defaultBuckets.timePerOutputToken.slice(0, 13), otelTpot);
  t.equal(defaultBuckets.timePerOutputToken.at(-1), 80);
  t.equal(defaultBuckets.requestLatency.length, 21);
  t.equal(defaultBuckets.requestLatency.at(-1), 7680);
  t.same(parseMetricsBuckets(undefined), defaultBuckets);
});

t.test('a family given replaces its defaults; the others stay', async (t) => {
  const buckets = parseMetricsBuckets('{"timeToFirstToken":[0.05,0.1,0.5],"batchSize":[1,8,64]}');
  t.same(buckets.timeToFirstToken, [0.05, 0.1, 0.5]);
  t.same(buckets.batchSize, [1, 8, 64]);
  t.same(buckets.requestLatency, defaultBuckets.requestLatency);
});

t.test('bad text is refused, naming the family and the problem', async (t) => {
  t.throws(() => parseMetricsBuckets('{'), /^not JSON: \{/);
  t.throws(() => parseMetricsBuckets('{"ttft":[1]}'), /Unrecognized key/);
  t.throws(() => parseMetricsBuckets('{"timeToFirstToken":[1,1]}'), /timeToFirstToken: boundaries must increase strictly/);
  t.throws(() => parseMetricsBuckets('{"timeToFirstToken":[-1]}'), /timeToFirstToken\.0/);
  t.throws(() => parseMetricsBuckets('{"timeToFirstToken":[]}'), /timeToFirstToken/);
  t.throws(() => parseMetricsBuckets('[1,2]'), /^value: Invalid input: expected object/);
});

t.test('the option is checked at startup: a bad value names the option and what is allowed', async (t) => {
  t.equal(loadConfig({ env: { SEMANTIC_METRICS_BUCKETS: '{"batchSize":[1,2]}' } }).metricsBuckets, '{"batchSize":[1,2]}');
  t.throws(() => loadConfig({ env: { SEMANTIC_METRICS_BUCKETS: '{"batchSize":[2,1]}' } }), /metricsBuckets must be a JSON object of families \(timeToFirstToken, /);
});
