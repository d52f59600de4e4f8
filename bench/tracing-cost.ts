/**
 * What tracing costs, in the two places it runs (worker/tracing/):
 * - the step loop: the engine on the fake addon (no llama.cpp: a decode costs nothing, so the loop's
 *   own JavaScript is all that is timed, the harshest case), N streams decoding, every request traced
 *   or none; reps alternate, medians compared (only ratios within one run mean anything);
 * - the front: per request, the GenAI span, its thread spans made from their records, and the
 *   SERVER span's context, with the real SDK and a batch processor over an exporter that drops.
 * Times are this process's CPU time (user + system): on a shared machine, wall time mostly measures
 * the neighbours.
 *
 *   npm run build && node --expose-gc dist/bench/tracing-cost.js --streams 4 --tokens 256 --reps 41
 */
import { parseArgs } from 'node:util';
import pino from 'pino';
import { BatchSpanProcessor, type ReadableSpan, type SpanExporter } from '@opentelemetry/sdk-trace-base';
import { context, trace } from '@opentelemetry/api';
import { generate, Harness } from '../test/helpers/engine-harness.js';
import { startTracing } from '../worker/tracing/tracing.js';
import { recordThreadSpans, traceGeneration } from '../worker/tracing/spans.js';
import type { GenerationHandlers } from '../worker/generation.js';
import type { GenerateMessage, ThreadSpan, TraceCarrier } from '../shared/protocol/messages.js';
import { median } from './stats.js';

const { values } = parseArgs({
  options: {
    streams: { type: 'string', default: '4' },
    tokens: { type: 'string', default: '256' },
    reps: { type: 'string', default: '41' },
    requests: { type: 'string', default: '2000' },
  },
});
const streams = Number(values.streams);
const tokens = Number(values.tokens);
const reps = Number(values.reps);

const carrier: TraceCarrier = { traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' };

/** One rep: `streams` requests decoding `tokens` each on a fresh engine; microseconds per step. */
async function stepLoop(traced: boolean): Promise<number> {
  const harness = new Harness({ contextSize: 8192, sequenceSize: 8192, maxSequences: streams, batchTokens: 512, maxBatchTokens: 512, defaultMaxTokens: tokens });
  const requests = Array.from({ length: streams }, (_, i) => generate(`r${i}`, `agent-${i}`, 'abcdefgh', tokens, traced ? { trace: carrier } : {}));
  (globalThis as { gc?: () => void }).gc?.(); // run with --expose-gc: the last rep's garbage is not this one's cost
  const started = process.cpuUsage();
  await Promise.all(requests.map((request) => harness.run(request)));
  return cpuMicros(started) / harness.context.batches.length;
}

const dropping: SpanExporter = {
  export: (_spans: ReadableSpan[], done) => done({ code: 0 }),
  shutdown: () => Promise.resolve(),
};
const handlers: GenerationHandlers = { onStarted: () => undefined, onTokens: () => undefined, onDone: () => undefined, onFailed: () => undefined };
const usage = { promptTokens: 100, completionTokens: 50, cachedTokens: 80 };

/** The front's spans for one request, as the server makes them: microseconds per request. */
function frontSpans(count: number): number {
  const message: GenerateMessage = generate('front', 'agent', 'abcdefgh', 16, { input: { kind: 'chat', messages: [{ role: 'user', content: 'hi' }] } });
  const tracer = trace.getTracer('bench');
  const started = process.cpuUsage();
  for (let i = 0; i < count; i++) {
    const server = tracer.startSpan('POST /v1/chat/completions');
    context.with(trace.setSpan(context.active(), server), () => {
      const traced = traceGeneration(message, handlers, 'tiny');
      const parent = traced.message.trace ?? carrier;
      const phase = (name: string, at: number): ThreadSpan => ({
        name,
        parent,
        startMs: Date.now() - 5 + at,
        endMs: Date.now() - 4 + at,
        attributes: { 'semantic.cache.tier': 'hot' },
      });
      recordThreadSpans(['queue wait', 'admission', 'prefill', 'decode', 'persist'].map(phase));
      traced.handlers.onStarted({ type: 'started', requestId: 'front', promptTokens: 100, cachedTokens: 80, cacheTier: 'hot' });
      traced.handlers.onDone({ type: 'done', requestId: 'front', finishReason: 'stop', usage });
    });
    server.end();
  }
  return cpuMicros(started) / count;
}

function cpuMicros(since: NodeJS.CpuUsage): number {
  const { user, system } = process.cpuUsage(since);
  return user + system;
}

const off: number[] = [];
const on: number[] = [];
await stepLoop(false); // warm-up
await stepLoop(true);
for (let rep = 0; rep < reps; rep++) {
  // Alternating, starting with a different side each rep, so that drift hits both alike.
  for (const traced of rep % 2 === 0 ? [false, true] : [true, false]) (traced ? on : off).push(await stepLoop(traced));
}
const frontOff = frontSpans(Number(values.requests));
const tracing = await startTracing(pino({ level: 'warn' }), [new BatchSpanProcessor(dropping)]);
frontSpans(200); // warm-up
const frontOn = frontSpans(Number(values.requests));
await tracing.shutdown();

const stepOff = median(off);
const stepOn = median(on);
// Each rep's pair measured side by side: the spread of their ratios is the noise floor of this machine.
const ratios = on.map((x, i) => x / (off[i] ?? x)).sort((a, b) => a - b);
console.log(
  JSON.stringify(
    {
      streams,
      tokensPerStream: tokens,
      reps,
      stepLoopCpuMicrosPerStep: {
        off: round(stepOff),
        on: round(stepOn),
        ratio: round(stepOn / stepOff, 3),
        pairedRatio: { median: round(median(ratios), 3), min: round(ratios[0] ?? 1, 3), max: round(ratios.at(-1) ?? 1, 3) },
      },
      frontCpuMicrosPerRequest: { off: round(frontOff), on: round(frontOn), spansPerRequest: 7 },
    },
    null,
    2,
  ),
);

function round(x: number, digits = 2): number {
  return Math.round(x * 10 ** digits) / 10 ** digits;
}
