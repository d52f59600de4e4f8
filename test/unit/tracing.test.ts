// When tracing is on (worker/tracing/tracing.ts), and what the inference thread's stamps (request-clock.ts)
// become: spans for a traced request (timeline.ts), latencies in the metrics for every request.
import t from 'tap';
import { tracingWanted } from '../../worker/tracing/tracing.js';
import { RequestTimelines } from '../../worker/tracing/timeline.js';
import { RequestClock } from '../../worker/engine/request-clock.js';
import { EngineMetrics } from '../../worker/engine/metrics.js';
import type { MetricValueWithName } from 'prom-client';
import { generate } from '../helpers/engine-harness.js';
import type { ThreadSpan } from '../../shared/protocol/messages.js';

t.test('tracing is on only when an exporter or endpoint is named, and not switched off', async (t) => {
  const cases: [NodeJS.ProcessEnv, boolean][] = [
    [{}, false],
    [{ OTEL_SERVICE_NAME: 'x' }, false],
    [{ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' }, true],
    [{ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://collector:4318/v1/traces' }, true],
    [{ OTEL_EXPORTER_OTLP_ENDPOINT: '  ' }, false],
    [{ OTEL_TRACES_EXPORTER: 'otlp' }, true],
    [{ OTEL_TRACES_EXPORTER: 'console' }, true],
    [{ OTEL_TRACES_EXPORTER: 'none', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' }, false],
    [{ OTEL_SDK_DISABLED: 'true', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' }, false],
    [{ OTEL_SDK_DISABLED: 'false', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' }, true],
  ];
  for (const [env, on] of cases) t.equal(tracingWanted(env), on, JSON.stringify(env));
});

const trace = { traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' };

/** A clock whose spans land in `emitted`, with a real metrics registry. */
function clocked(): { clock: RequestClock; timelines: RequestTimelines; metrics: EngineMetrics; emitted: ThreadSpan[][] } {
  const emitted: ThreadSpan[][] = [];
  const timelines = new RequestTimelines((spans) => emitted.push(spans));
  const metrics = new EngineMetrics();
  return { clock: new RequestClock(metrics, timelines), timelines, metrics, emitted };
}

async function histogramCount(metrics: EngineMetrics, name: string): Promise<number | undefined> {
  const family = (await metrics.json()).find((metric) => metric.name === name);
  const values = (family?.values ?? []) as MetricValueWithName<string>[];
  return values.find((value) => value.metricName === `${name}_count`)?.value;
}

t.test('a traced request becomes its phases, contiguous, in order; an untraced one nothing; both are timed', async (t) => {
  const { clock, metrics, emitted } = clocked();
  clock.submitted(generate('plain', 'a', 'hi'));
  clock.taken('plain');
  clock.started('plain', 3, 0, 'miss');
  clock.firstSampled('plain');
  clock.emitted('plain');
  clock.done('plain', { finishReason: 'stop', usage: { promptTokens: 3, completionTokens: 2, cachedTokens: 0 } });
  t.same(emitted, [], 'untraced: nothing recorded');

  clock.submitted(generate('r1', 'a', 'hi', 4, { trace }));
  clock.taken('r1');
  clock.queued('r1');
  clock.admitted('r1', 'disk');
  clock.started('r1', 10, 8, 'disk');
  clock.firstSampled('r1');
  clock.firstSampled('r1'); // only the first counts
  for (let i = 0; i < 4; i++) clock.emitted('r1');
  clock.done('r1', { finishReason: 'length', usage: { promptTokens: 10, completionTokens: 4, cachedTokens: 8 } });
  // One record serves the metrics too: 2 requests timed to their first token and end, 3 gaps between r1's 4 tokens.
  t.equal(await histogramCount(metrics, 'semantic_time_to_first_token_seconds'), 2);
  t.equal(await histogramCount(metrics, 'semantic_inter_token_latency_seconds'), 3);
  t.equal(await histogramCount(metrics, 'semantic_e2e_request_latency_seconds'), 2);
  t.equal(await histogramCount(metrics, 'semantic_request_queue_time_seconds'), 2);
  const spans = emitted[0] ?? [];
  t.same(
    spans.map((s) => s.name),
    ['queue wait', 'admission', 'restore', 'prefill', 'decode'],
  );
  for (const [i, span] of spans.entries()) {
    t.same(span.parent, trace);
    t.ok(span.endMs >= span.startMs);
    if (i > 0) t.equal(span.startMs, spans[i - 1]?.endMs, `${span.name} starts where the previous ended`);
  }
  t.match(spans[1]?.attributes, { 'semantic.admission.queued': true });
  t.match(spans[2]?.attributes, { 'semantic.cache.tier': 'disk', 'semantic.cache.restored': true });
  t.match(spans[3]?.attributes, { 'semantic.prefill.computed_tokens': 2 });
  t.match(spans[4]?.attributes, { 'gen_ai.usage.output_tokens': 4 });
});

t.test('a refused request has its wait and admission only; a written turn joins its trace once', async (t) => {
  const { clock, timelines, metrics, emitted } = clocked();
  clock.submitted(generate('r2', 'b', 'hi', 4, { trace }));
  clock.taken('r2');
  clock.failed('r2', 'ERR_QUEUE_FULL');
  t.equal(await histogramCount(metrics, 'semantic_e2e_request_latency_seconds'), 0, 'a refusal is not a served request');
  t.same(
    emitted[0]?.map((s) => s.name),
    ['queue wait', 'admission'],
  );

  timelines.turnParked('b', trace);
  t.same(timelines.takeWriteTrace('b'), trace);
  t.equal(timelines.takeWriteTrace('b'), undefined, 'taken once');
  timelines.turnParked('c', trace);
  timelines.turnParked('c', undefined);
  t.equal(timelines.takeWriteTrace('c'), undefined, "an untraced later turn is not the earlier turn's write");
  timelines.written('b', trace, 100, { startMs: 105, endMs: 120 }, 4096);
  t.match(emitted[1], [{ name: 'persist', parent: trace, startMs: 105, endMs: 120, attributes: { 'semantic.persist.bytes': 4096, 'semantic.persist.queued_ms': 5 } }]);
});
