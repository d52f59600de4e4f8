/**
 * The front's spans: one SERVER span per routed request (a client's W3C `traceparent` is its
 * parent), one GenAI span per generation under it, and the spans the inference and piscina threads
 * timed (timeline.ts), made here with their own start and end times under the parent they name.
 * Each entry point returns at once when tracing is off (tracing.ts).
 */
import { context, isSpanContextValid, propagation, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Context, type Span, type TextMapGetter } from '@opentelemetry/api';
import { tracingOn } from './tracing.js';
import type { HttpExchange } from '../http/http-exchange.js';
import type { GenerationHandlers } from '../generation.js';
import type { GenerateMessage, ThreadSpan, TraceCarrier } from '../../shared/protocol/messages.js';

const tracer = (): ReturnType<typeof trace.getTracer> => trace.getTracer('semantic');
const noop = (): void => undefined;

export interface TracedGeneration {
  message: GenerateMessage;
  handlers: GenerationHandlers;
  aborted(): void;
}

const headerGetter: TextMapGetter<ReadonlyMap<string, string>> = {
  keys: (headers) => [...headers.keys()],
  get: (headers, key) => headers.get(key.toLowerCase()),
};

/** The trace id of `ctx`'s span (the active one by default): what a request's log line carries. Undefined when tracing is off. */
export function currentTraceId(ctx: Context = context.active()): string | undefined {
  const spanContext = trace.getSpanContext(ctx);
  return spanContext !== undefined && isSpanContextValid(spanContext) ? spanContext.traceId : undefined;
}

/** Each traced request's trace id, for its log line (written after the response, outside the span's context). */
const traceIds = new WeakMap<HttpExchange, string>();

/** The trace id of the request's SERVER span; undefined when tracing is off or the route was not found. */
export function traceIdOf(exchange: HttpExchange): string | undefined {
  return traceIds.get(exchange);
}

/** Runs a routed request's handler inside its SERVER span, which ends when the response has. */
export function inRequestSpan<T>(exchange: HttpExchange, route: string, handle: () => T): T {
  if (!tracingOn()) return handle();
  const parent = propagation.extract(ROOT_CONTEXT, exchange.headers, headerGetter);
  const attributes = { 'http.request.method': exchange.method, 'http.route': route, 'url.path': exchange.path };
  const span = tracer().startSpan(`${exchange.method} ${route}`, { kind: SpanKind.SERVER, attributes }, parent);
  traceIds.set(exchange, span.spanContext().traceId);
  exchange.onClose((aborted) => {
    const status = exchange.statusCode ?? 0;
    span.setAttribute('http.response.status_code', status);
    if (status >= 500 || aborted) span.setStatus({ code: SpanStatusCode.ERROR, ...(aborted ? { message: 'client went away' } : {}) });
    span.end();
  });
  return context.with(trace.setSpan(parent, span), handle);
}

/**
 * A generation's GenAI span (semantic conventions: `{operation} {model}`, INTERNAL, in-process),
 * child of the active request span; its context rides on the message to the inference thread.
 * Returns the message and handlers to use (the same ones when tracing is off or the trace is not
 * sampled), and what to call when the client aborts: no handler runs after that.
 */
export function traceGeneration(message: GenerateMessage, handlers: GenerationHandlers, model: string): TracedGeneration {
  if (!tracingOn() || message.trace !== undefined) return { message, handlers, aborted: noop }; // off, or traced before it was held
  const operation = message.input.kind === 'chat' ? 'chat' : 'text_completion';
  const attributes = {
    'gen_ai.operation.name': operation,
    'gen_ai.provider.name': 'semantic',
    'gen_ai.request.model': model,
    'gen_ai.agent.id': message.agentId,
    'gen_ai.conversation.id': message.agentId,
    ...(message.maxTokens === undefined ? {} : { 'gen_ai.request.max_tokens': message.maxTokens }),
    'gen_ai.request.temperature': message.sampling.temperature,
  };
  const span = tracer().startSpan(`${operation} ${model}`, { kind: SpanKind.INTERNAL, attributes }, context.active());
  if (!span.isRecording()) return { message, handlers, aborted: noop };
  const carrier: Partial<TraceCarrier> = {};
  propagation.inject(trace.setSpan(context.active(), span), carrier);
  const traced = carrier.traceparent === undefined ? message : { ...message, trace: { ...carrier, traceparent: carrier.traceparent } };
  const aborted = (): void => {
    if (!span.isRecording()) return; // ended already, or aborted twice
    span.setAttribute('gen_ai.response.finish_reasons', ['abort']);
    span.end();
  };
  return { message: traced, handlers: endingSpan(span, handlers), aborted };
}

/** The handlers, each also telling the span what happened; the span ends with the generation. */
function endingSpan(span: Span, handlers: GenerationHandlers): GenerationHandlers {
  return {
    onStarted: (started) => {
      span.setAttributes({ 'semantic.cache.tier': started.cacheTier, 'gen_ai.usage.cache_read.input_tokens': started.cachedTokens });
      handlers.onStarted(started);
    },
    onTokens: (tokens) => handlers.onTokens(tokens),
    onDone: (done) => {
      const { usage, finishReason } = done;
      span.setAttributes({
        'gen_ai.usage.input_tokens': usage.promptTokens,
        'gen_ai.usage.output_tokens': usage.completionTokens,
        'gen_ai.usage.cache_read.input_tokens': usage.cachedTokens,
        'gen_ai.response.finish_reasons': [finishReason],
      });
      span.end();
      handlers.onDone(done);
    },
    onFailed: (error) => {
      span.setAttribute('error.type', error.code);
      span.setStatus({ code: SpanStatusCode.ERROR, message: error.message });
      span.end();
      handlers.onFailed(error);
    },
  };
}

/** Spans the inference and piscina threads timed: made now, with their own times, under the span each names. */
export function recordThreadSpans(spans: readonly ThreadSpan[]): void {
  if (!tracingOn()) return;
  for (const { name, parent, startMs, endMs, attributes } of spans) {
    const parentContext = propagation.extract(ROOT_CONTEXT, parent);
    tracer().startSpan(name, { kind: SpanKind.INTERNAL, startTime: startMs, attributes }, parentContext).end(endMs);
  }
}
