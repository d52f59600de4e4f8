/**
 * The one way every API family answers a generation. The headers go out once the engine admitted the
 * request, so refusals (429 queue full, 400 context exceeded) still get their real status; then comes
 * one JSON body when generation ends, or a stream of server-sent events as it goes, where a failure
 * can only be an error event. A family says how it words these in a sink (JSON or stream) and does
 * nothing else: a new family is its schema and its sink.
 */
import { SemanticError, type ErrorPayload } from '../../shared/errors.js';
import type { GenerateMessage, StartedMessage } from '../../shared/protocol/messages.js';
import { performance } from 'node:perf_hooks';
import type { CompletedMessage, Generation, GenerationEngine, GenerationHandlers } from '../generation.js';
import type { ResponseHeaders } from '../http/http-exchange.js';
import type { RequestContext } from '../http/router.js';
import { SseStream } from '../http/sse.js';

/** One server-sent event: JSON with an optional event name, or a raw line of data (OpenAI's `[DONE]`). */
export type SinkEvent = { json: unknown; name?: string } | { raw: string };

interface SinkHeaders {
  /** Headers the family sends beside the cache headers every family sends. */
  readonly headers?: ResponseHeaders;
}

/** A generation answered as one JSON body. */
export interface JsonSink extends SinkHeaders {
  readonly mode: 'json';
  /** The generated text as it arrives. */
  text(text: string): void;
  /** The body, once generation ended. */
  body(done: CompletedMessage): unknown;
}

/** A generation answered as server-sent events; each method returns the events to send, in order. */
export interface StreamSink extends SinkHeaders {
  readonly mode: 'stream';
  /** Right after the headers, before any text. */
  open(started: StartedMessage): SinkEvent[];
  text(text: string): SinkEvent[];
  /** The last events: the stream ends after them. */
  finish(done: CompletedMessage): SinkEvent[];
  /** A failure after the status went out; the stream ends after it. */
  error(error: ErrorPayload): SinkEvent;
}

export type GenerationSink = JsonSink | StreamSink;

/** How much of the prompt came from the agent's cache, told in headers on every route family. */
export function cacheHeaders(started: StartedMessage): Record<string, string> {
  return {
    'X-Semantic-Cache': started.cacheTier,
    'X-Semantic-Prompt-Tokens-Computed': String(started.promptTokens - started.cachedTokens),
    ...(started.sharedFrom === undefined ? {} : { 'X-Semantic-Shared-From': started.sharedFrom }),
  };
}

/** Runs `message` on the engine and answers it as `sink` words it; the client leaving aborts it. */
export function runGeneration(context: RequestContext, engine: GenerationEngine, message: GenerateMessage, sink: GenerationSink): void {
  context.annotate({ agentId: message.agentId });
  const logged: GenerationEngine['generate'] = (generate, handlers) => engine.generate(generate, annotating(context, handlers));
  const generation = sink.mode === 'json' ? answerAsJson(context, logged, message, sink) : answerAsStream(context, logged, message, sink);
  abortOnDisconnect(context, generation);
}

const roundMs = (ms: number): number => Math.round(ms * 10) / 10;

/**
 * The request's log line learns what its generation did: the tier its cache came from, prompt tokens
 * computed and reused, time to first token (from the request's arrival), tokens generated, how it ended.
 */
function annotating(context: RequestContext, handlers: GenerationHandlers): GenerationHandlers {
  let firstToken = true;
  return {
    onStarted: (started) => {
      const { cacheTier: tier, promptTokens, cachedTokens } = started;
      context.annotate({ tier, promptTokens, cachedTokens, computedTokens: promptTokens - cachedTokens });
      handlers.onStarted(started);
    },
    onTokens: (tokens) => {
      if (firstToken && tokens.tokenCount > 0) {
        firstToken = false;
        context.annotate({ ttftMs: roundMs(performance.now() - context.exchange.receivedAt) });
      }
      handlers.onTokens(tokens);
    },
    onDone: (done) => {
      context.annotate({ completionTokens: done.usage.completionTokens, finishReason: done.finishReason });
      handlers.onDone(done);
    },
    onFailed: (error) => {
      context.annotate({ errorCode: error.code });
      handlers.onFailed(error);
    },
  };
}

/** Aborts the generation the moment the client goes away, so its sequence is freed at once. */
function abortOnDisconnect(context: RequestContext, generation: Generation): void {
  context.exchange.onClose((aborted) => {
    if (aborted) generation.abort();
  });
}

/**
 * The agent the server filed the turn under, also when it derived the id from the conversation: a
 * client can send it back as `X-Agent-ID`, and a consistent-hash proxy in front of several replicas
 * (ops/nginx/semantic.conf) routes on that header, so the agent's turns meet its cache.
 */
function agentHeader(message: GenerateMessage): Record<string, string> {
  return { 'X-Semantic-Agent-ID': message.agentId };
}

function headersOf(started: StartedMessage, message: GenerateMessage, sink: GenerationSink): ResponseHeaders {
  return { ...agentHeader(message), ...cacheHeaders(started), ...sink.headers };
}

function answerAsJson(context: RequestContext, generate: GenerationEngine['generate'], message: GenerateMessage, sink: JsonSink): Generation {
  let headers: ResponseHeaders = {};
  return generate(message, {
    onStarted: (started) => {
      headers = headersOf(started, message, sink);
    },
    onTokens: (tokens) => sink.text(tokens.text),
    onDone: (done) => context.sendJson(200, sink.body(done), headers),
    onFailed: (error) => context.sendError(SemanticError.fromPayload(error)),
  });
}

function send(sse: SseStream, events: readonly SinkEvent[]): void {
  for (const event of events) {
    if ('raw' in event) sse.send(event.raw);
    else sse.sendJson(event.json, event.name);
  }
}

/** The stream opens with its first event, so a failure before any event still gets its real status. */
function answerAsStream(context: RequestContext, generate: GenerationEngine['generate'], message: GenerateMessage, sink: StreamSink): Generation {
  let sse = new SseStream(context.exchange);
  return generate(message, {
    onStarted: (started) => {
      sse = new SseStream(context.exchange, { headers: headersOf(started, message, sink) });
      send(sse, sink.open(started));
    },
    onTokens: (tokens) => send(sse, sink.text(tokens.text)),
    onDone: (done) => {
      send(sse, sink.finish(done));
      sse.end();
    },
    onFailed: (error) => {
      if (!sse.isOpen) return context.sendError(SemanticError.fromPayload(error));
      context.log.warn({ code: error.code, reason: error.message }, 'generation failed mid-stream');
      send(sse, [sink.error(error)]);
      sse.end();
    },
  });
}
