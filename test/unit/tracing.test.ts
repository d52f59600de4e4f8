// When tracing is on (worker/tracing/tracing.ts), and what the inference thread's stamps become (timeline.ts).
import t from 'tap';
import { tracingWanted } from '../../worker/tracing/tracing.js';
import { RequestTimelines } from '../../worker/tracing/timeline.js';
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

t.test('a traced request becomes its phases, contiguous, in order; an untraced one nothing', async (t) => {
  const emitted: ThreadSpan[][] = [];
  const timelines = new RequestTimelines((spans) => emitted.push(spans));
  timelines.submitted(generate('plain', 'a', 'hi'));
  for (const step of ['taken', 'firstToken'] as const) timelines[step]('plain');
  timelines.end('plain', { finishReason: 'stop', usage: { promptTokens: 3, completionTokens: 2, cachedTokens: 0 } });
  t.same(emitted, [], 'untraced: nothing recorded');

  timelines.submitted(generate('r1', 'a', 'hi', 4, { trace }));
  timelines.taken('r1');
  timelines.queued('r1');
  timelines.admitted('r1', 'disk');
  timelines.started('r1', 'disk');
  timelines.firstToken('r1');
  timelines.firstToken('r1'); // only the first counts
  timelines.end('r1', { finishReason: 'length', usage: { promptTokens: 10, completionTokens: 4, cachedTokens: 8 } });
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
  const emitted: ThreadSpan[][] = [];
  const timelines = new RequestTimelines((spans) => emitted.push(spans));
  timelines.submitted(generate('r2', 'b', 'hi', 4, { trace }));
  timelines.taken('r2');
  timelines.end('r2', { error: 'ERR_QUEUE_FULL' });
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
