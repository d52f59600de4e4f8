// OpenTelemetry traces from a real server to a local OTLP/HTTP receiver (JSON encoding, so the test
// can read it; the default protobuf goes the same way): one trace per request, spans from the main
// thread, the inference thread and the piscina writer joined in one tree, a client's traceparent honoured.
import t from 'tap';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tinyModelPath } from '../helpers/model.js';
import { persisted, startServer, type RunningServer } from '../helpers/server.js';

const modelPath = await tinyModelPath();
const ADMIN_KEY = 'admin-key-0001';
const AGENT = 'traced-agent';

interface ReceivedSpan {
  traceId: string;
  spanId: string;
  parentSpanId: string;
  name: string;
  kind: number;
  startNs: bigint;
  endNs: bigint;
  attributes: Record<string, unknown>;
}

interface OtlpValue {
  stringValue?: string;
  intValue?: string | number;
  boolValue?: boolean;
  doubleValue?: number;
  arrayValue?: { values?: OtlpValue[] };
}
interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  startTimeUnixNano: string;
  endTimeUnixNano: string;
  attributes?: { key: string; value: OtlpValue }[];
}
interface OtlpRequest {
  resourceSpans?: { resource?: { attributes?: { key: string; value: OtlpValue }[] }; scopeSpans?: { spans?: OtlpSpan[] }[] }[];
}

function valueOf(value: OtlpValue): unknown {
  if (value.arrayValue !== undefined) return (value.arrayValue.values ?? []).map(valueOf);
  if (value.intValue !== undefined) return Number(value.intValue);
  return value.stringValue ?? value.boolValue ?? value.doubleValue;
}

/** A loopback OTLP/HTTP trace receiver: every span posted to /v1/traces, and the service names seen. */
async function otlpReceiver(): Promise<{ server: Server; endpoint: string; spans: ReceivedSpan[]; services: Set<unknown> }> {
  const spans: ReceivedSpan[] = [];
  const services = new Set<unknown>();
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      if (req.method !== 'POST' || req.url !== '/v1/traces') return void res.writeHead(404).end();
      const body = JSON.parse(Buffer.concat(chunks).toString()) as OtlpRequest;
      for (const { resource, scopeSpans } of body.resourceSpans ?? []) {
        services.add(valueOf(resource?.attributes?.find((a) => a.key === 'service.name')?.value ?? {}));
        for (const span of (scopeSpans ?? []).flatMap((scope) => scope.spans ?? [])) {
          const attributes = Object.fromEntries((span.attributes ?? []).map((a) => [a.key, valueOf(a.value)]));
          const { traceId, spanId, parentSpanId = '', name, kind } = span;
          spans.push({ traceId, spanId, parentSpanId, name, kind, startNs: BigInt(span.startTimeUnixNano), endNs: BigInt(span.endTimeUnixNano), attributes });
        }
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/traces`, spans, services };
}

/** Polls (bounded) until the trace holds `count` spans; a missing span fails with what did arrive. */
async function traceOf(spans: ReceivedSpan[], matches: (span: ReceivedSpan) => boolean, count: number): Promise<ReceivedSpan[]> {
  for (let i = 0; i < 200; i++) {
    const root = spans.find(matches);
    const trace = root === undefined ? [] : spans.filter((s) => s.traceId === root.traceId);
    if (trace.length >= count) return trace;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error(`the trace never reached ${count} spans: ${JSON.stringify(spans.map((s) => s.name))}`);
}

async function chat(server: RunningServer, content: string, headers: Record<string, string> = {}) {
  const response = await fetch(`${server.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-agent-id': AGENT, ...headers },
    body: JSON.stringify({ model: 'tiny', messages: [{ role: 'user', content }], max_tokens: 6, temperature: 0 }),
  });
  t.equal(response.status, 200);
  const body = (await response.json()) as {
    choices: { finish_reason: string }[];
    usage: { prompt_tokens: number; completion_tokens: number; prompt_tokens_details: { cached_tokens: number } };
  };
  return { usage: body.usage, finishReason: body.choices[0]?.finish_reason };
}

const byName = (trace: ReceivedSpan[], name: string): ReceivedSpan => {
  const found = trace.filter((span) => span.name === name);
  if (found.length !== 1) throw new Error(`${found.length} spans named ${name}`);
  return found[0] as ReceivedSpan;
};

t.test('one trace per request across threads; a client traceparent is the root', async (t) => {
  const receiver = await otlpReceiver();
  t.teardown(() => receiver.server.close());
  const env = {
    OTEL_TRACES_EXPORTER: 'otlp',
    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: receiver.endpoint,
    OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'http/json',
    OTEL_BSP_SCHEDULE_DELAY: '50',
    OTEL_SERVICE_NAME: 'semantic-test',
  };
  const args = ['serve', '--port', '0', '--model', modelPath, '--model-id', 'tiny', '--threads', '1', '--context-size', '2048', '--admin-key', ADMIN_KEY];
  const server = await startServer(args, 'ready', env);
  t.teardown(() => server.stop('SIGKILL'));
  t.ok(
    server.logs.some((line) => line.msg === 'tracing on'),
    'the SDK started',
  );

  const clientTrace = '4bf92f3577b34da6a3ce929d0e0e4736';
  const clientSpan = '00f067aa0ba902b7';
  const first = await chat(server, 'Remember the number 42.', { traceparent: `00-${clientTrace}-${clientSpan}-01` });
  await persisted(server, AGENT, 1);
  const names = ['POST /v1/chat/completions', 'chat tiny', 'queue wait', 'admission', 'prefill', 'decode', 'persist'];
  const trace = await traceOf(receiver.spans, (span) => span.traceId === clientTrace, names.length);
  t.same(trace.map((span) => span.name).sort(), [...names].sort(), 'exactly these spans');

  const http = byName(trace, 'POST /v1/chat/completions');
  const gen = byName(trace, 'chat tiny');
  t.equal(http.parentSpanId, clientSpan, "the server span is the client span's child");
  t.equal(http.kind, 2, 'SERVER');
  t.equal(http.attributes['http.response.status_code'], 200);
  t.equal(gen.parentSpanId, http.spanId, 'the GenAI span is the server span’s child');
  for (const name of ['queue wait', 'admission', 'prefill', 'decode', 'persist']) t.equal(byName(trace, name).parentSpanId, gen.spanId, `${name} is the GenAI span's child`);
  t.match(gen.attributes, {
    'gen_ai.operation.name': 'chat',
    'gen_ai.provider.name': 'semantic',
    'gen_ai.request.model': 'tiny',
    'gen_ai.agent.id': AGENT,
    'gen_ai.conversation.id': AGENT,
    'gen_ai.usage.input_tokens': first.usage.prompt_tokens,
    'gen_ai.usage.output_tokens': first.usage.completion_tokens,
    'gen_ai.usage.cache_read.input_tokens': 0,
    'gen_ai.response.finish_reasons': [first.finishReason],
  });
  t.equal(byName(trace, 'prefill').attributes['semantic.prefill.computed_tokens'], first.usage.prompt_tokens);
  t.equal(byName(trace, 'decode').attributes['gen_ai.usage.output_tokens'], first.usage.completion_tokens);
  t.ok(Number(byName(trace, 'persist').attributes['semantic.persist.bytes']) > 0, 'the written file has bytes');
  // The threads' clocks agree: each phase starts where the previous one ended, inside the GenAI span.
  const phases = ['queue wait', 'admission', 'prefill', 'decode'].map((name) => byName(trace, name));
  for (const [i, phase] of phases.entries()) {
    t.ok(phase.startNs >= gen.startNs && phase.endNs <= gen.endNs, `${phase.name} inside the GenAI span`);
    if (i > 0) t.equal(phase.startNs, phases[i - 1]?.endNs, `${phase.name} starts where the previous phase ended`);
  }
  t.same([...receiver.services], ['semantic-test']);

  // The agent's hot and RAM caches go: its next turn is restored from its file, in a new trace of its own.
  const cleared = await fetch(`${server.url}/admin/caches/clear`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${ADMIN_KEY}` },
    body: JSON.stringify({ tiers: ['hot', 'ram'] }),
  });
  t.equal(cleared.status, 200);
  const second = await chat(server, 'Remember the number 42.');
  t.ok(second.usage.prompt_tokens_details.cached_tokens > 0, 'restored from disk');
  await persisted(server, AGENT, 2);
  const restoredNames = [...names, 'restore'];
  const isSecond = (span: ReceivedSpan): boolean => span.name === 'chat tiny' && span.traceId !== clientTrace;
  const again = await traceOf(receiver.spans, isSecond, restoredNames.length);
  t.same(again.map((span) => span.name).sort(), [...restoredNames].sort(), 'exactly these spans, a restore among them');
  t.equal(byName(again, 'POST /v1/chat/completions').parentSpanId, '', 'no traceparent: the server span is the root');
  t.match(byName(again, 'restore').attributes, { 'semantic.cache.tier': 'disk', 'semantic.cache.restored': true });
  t.equal(byName(again, 'restore').parentSpanId, byName(again, 'chat tiny').spanId);
  t.equal(byName(again, 'chat tiny').attributes['gen_ai.usage.cache_read.input_tokens'], second.usage.prompt_tokens_details.cached_tokens);

  t.equal(await server.stop('SIGTERM'), 0, 'SIGTERM: drained and flushed');
});
