/**
 * OpenAI-compatible routes: `POST /v1/chat/completions` (JSON or SSE) and `GET /v1/models`, and the
 * serving both OpenAI endpoints share (`POST /v1/completions` words its bodies in completions.ts).
 * Everything OpenAI-shaped lives here: response and chunk bodies, usage, the error body. The status of
 * an error comes from `describeError`; the engine only ever reports codes.
 *
 * A stream's headers go out on `started`, i.e. after the engine admitted the request, so refusals
 * (429 queue full, 400 context exceeded) still get their real status. A failure after that point can
 * only be an in-stream error event.
 */
import { randomBytes } from 'node:crypto';
import { describeError, ErrorCode, SemanticError, type ErrorPayload } from '../../../shared/errors.js';
import type { ChatMessage, GenerateMessage, ModelSummary, Usage } from '../../../shared/protocol/messages.js';
import type { CompletedMessage, Generation, GenerationHandlers } from '../../engine-client.js';
import { chatMessages, parseChatCompletionRequest, toChatGeneration, type ChatCompletionRequest } from './schema.js';
import { toOpenAIToolCall, type OpenAIToolCall } from './tools.js';
import { ToolCallStream, type ParsedToolCall } from '../../tools/tool-calls.js';
import { agentTerms, resolveAgent } from '../../../shared/agent-id.js';
import type { StartedMessage } from '../../../shared/protocol/messages.js';
import type { RequestContext, Route } from '../../http/router.js';
import { SseStream } from '../../http/sse.js';
import { servedModel } from '../request-checks.js';
import { noAgentLimit, type AgentGate } from '../../http/rate-limit.js';

/** What the OpenAI routes need from the engine client. */
export interface ChatEngine {
  /** The loaded model, once ready. */
  readonly model: ModelSummary | undefined;
  /** Why a request cannot be served now (loading, dead), or undefined when it can. */
  unavailable(): ErrorPayload | undefined;
  generate(message: GenerateMessage, handlers: GenerationHandlers): Generation;
}

export interface OpenAIErrorBody {
  error: { message: string; type: string; param: string | null; code: string };
}

export function openAIErrorBody(error: ErrorPayload): OpenAIErrorBody {
  return { error: { message: error.message, type: describeError(error.code).openaiType, param: error.param ?? null, code: error.code } };
}

/** Fields every body and chunk of one completion shares. */
export interface CompletionMeta {
  id: string;
  /** Unix seconds. */
  created: number;
  model: string;
}

/** `prefix`: `chatcmpl` for chat completions, `cmpl` for legacy completions, as OpenAI's ids. */
export function newCompletionMeta(model: string, now = Date.now(), prefix = 'chatcmpl'): CompletionMeta {
  return { id: `${prefix}-${randomBytes(12).toString('base64url')}`, created: Math.floor(now / 1000), model };
}

export interface OpenAIUsage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  prompt_tokens_details: { cached_tokens: number };
}

export function toOpenAIUsage(usage: Usage): OpenAIUsage {
  return {
    prompt_tokens: usage.promptTokens,
    completion_tokens: usage.completionTokens,
    total_tokens: usage.promptTokens + usage.completionTokens,
    prompt_tokens_details: { cached_tokens: usage.cachedTokens },
  };
}

export type ClientFinishReason = CompletedMessage['finishReason'] | 'tool_calls';

/** A generation that made calls ended for them, unless it was cut at max tokens. */
function finishReasonOf(done: CompletedMessage, calls: readonly unknown[]): ClientFinishReason {
  return calls.length > 0 && done.finishReason !== 'length' ? 'tool_calls' : done.finishReason;
}

/** What the model wrote, as the client sees it: text, and the calls parsed out of it (chat with tools). */
export interface ModelOutput {
  text: string;
  calls: ParsedToolCall[];
}

/** Reads the generated text as it arrives; `finish` flushes what was withheld. */
export interface OutputReader {
  push(text: string): ModelOutput;
  finish(): ModelOutput;
}

/** All text: no tools, or tool_choice none. */
export const textOutput = (): OutputReader => ({ push: (text) => ({ text, calls: [] }), finish: () => ({ text: '', calls: [] }) });

/** `parallel_tool_calls: false`: at most one call, as OpenAI promises; later calls are dropped. */
export function firstCallOnly(reader: OutputReader): OutputReader {
  let kept = 0;
  const limit = (output: ModelOutput): ModelOutput => {
    const calls = output.calls.slice(0, 1 - kept);
    kept += calls.length;
    return { text: output.text, calls };
  };
  return { push: (text) => limit(reader.push(text)), finish: () => limit(reader.finish()) };
}

/** Content is null when the model only called tools, as OpenAI words it. */
export function completionBody(meta: CompletionMeta, text: string, done: CompletedMessage, calls: readonly OpenAIToolCall[] = []): unknown {
  const message = calls.length === 0 ? { role: 'assistant', content: text } : { role: 'assistant', content: text === '' ? null : text, tool_calls: calls };
  return {
    id: meta.id,
    object: 'chat.completion',
    created: meta.created,
    model: meta.model,
    choices: [{ index: 0, message, logprobs: null, finish_reason: finishReasonOf(done, calls) }],
    usage: toOpenAIUsage(done.usage),
  };
}

type ChunkDelta = { role?: 'assistant'; content?: string; tool_calls?: (OpenAIToolCall & { index: number })[] };

export function completionChunk(meta: CompletionMeta, delta: ChunkDelta, finishReason: ClientFinishReason | null = null): unknown {
  return {
    id: meta.id,
    object: 'chat.completion.chunk',
    created: meta.created,
    model: meta.model,
    choices: [{ index: 0, delta, logprobs: null, finish_reason: finishReason }],
  };
}

/** The stream's last event before `[DONE]` when usage was asked for: no choices, the usage. */
export function usageChunk(meta: CompletionMeta, usage: Usage, object = 'chat.completion.chunk'): unknown {
  return { id: meta.id, object, created: meta.created, model: meta.model, choices: [], usage: toOpenAIUsage(usage) };
}

/**
 * How one OpenAI endpoint words a completion, so chat and legacy completions share one way of running
 * a generation as JSON or as a stream and differ only in their bodies and chunks.
 */
export interface CompletionFormat {
  /** `calls`: parsed from the output (chat with tools only). */
  body(meta: CompletionMeta, text: string, done: CompletedMessage, calls?: ParsedToolCall[]): unknown;
  /** Sent once the request is admitted, before any text (chat's role chunk); legacy completions have none. */
  opening?(meta: CompletionMeta): unknown;
  text(meta: CompletionMeta, text: string): unknown;
  /** Calls completed by a delta, numbered from `firstIndex` in the stream; only chat has them. */
  toolCalls?(meta: CompletionMeta, calls: ParsedToolCall[], firstIndex: number): unknown;
  /** The chunk that carries the finish reason. */
  finish(meta: CompletionMeta, finishReason: ClientFinishReason): unknown;
  usage(meta: CompletionMeta, usage: Usage): unknown;
}

const chatFormat: CompletionFormat = {
  body: (meta, text, done, calls = []) => completionBody(meta, text, done, calls.map(toOpenAIToolCall)),
  opening: (meta) => completionChunk(meta, { role: 'assistant', content: '' }),
  text: (meta, text) => completionChunk(meta, { content: text }),
  toolCalls: (meta, calls, firstIndex) => completionChunk(meta, { tool_calls: calls.map((call, i) => ({ index: firstIndex + i, ...toOpenAIToolCall(call) })) }),
  finish: (meta, finishReason) => completionChunk(meta, {}, finishReason),
  usage: (meta, usage) => usageChunk(meta, usage),
};

/** The model a request names must be the one served; OpenAI's wording of the 404. */
const notServed = (requested: string, served: string): string => `The model '${requested}' does not exist; this server runs '${served}'.`;

/** Aborts the generation the moment the client goes away, so its sequence is freed at once. */
function abortOnDisconnect(context: RequestContext, generation: Generation): void {
  context.exchange.onClose((aborted) => {
    if (aborted) generation.abort();
  });
}

/** How much of the prompt came from the agent's cache, told in headers on every route family. */
export function cacheHeaders(started: StartedMessage): Record<string, string> {
  return {
    'X-Semantic-Cache': started.cacheTier,
    'X-Semantic-Prompt-Tokens-Computed': String(started.promptTokens - started.cachedTokens),
    ...(started.sharedFrom === undefined ? {} : { 'X-Semantic-Shared-From': started.sharedFrom }),
  };
}

/** Appends one reading of the output to what was read so far. */
function gather(into: ModelOutput, part: ModelOutput): void {
  into.text += part.text;
  into.calls.push(...part.calls);
}

function completeAsJson(context: RequestContext, engine: ChatEngine, prepared: PreparedRequest, meta: CompletionMeta, format: CompletionFormat): void {
  const output: ModelOutput = { text: '', calls: [] };
  let headers: Record<string, string> = {};
  const generation = engine.generate(prepared.message, {
    onStarted: (started) => {
      headers = cacheHeaders(started);
    },
    onTokens: (tokens) => gather(output, prepared.output.push(tokens.text)),
    onDone: (done) => {
      gather(output, prepared.output.finish());
      context.sendJson(200, format.body(meta, output.text, done, output.calls), headers);
    },
    onFailed: (error) => context.sendError(SemanticError.fromPayload(error)),
  });
  abortOnDisconnect(context, generation);
}

function completeAsStream(context: RequestContext, engine: ChatEngine, prepared: PreparedRequest, meta: CompletionMeta, format: CompletionFormat, includeUsage: boolean): void {
  let sse = new SseStream(context.exchange);
  let callCount = 0;
  const send = (part: ModelOutput): void => {
    if (part.text !== '') sse.sendJson(format.text(meta, part.text));
    if (part.calls.length > 0 && format.toolCalls !== undefined) sse.sendJson(format.toolCalls(meta, part.calls, callCount));
    callCount += part.calls.length;
  };
  const generation = engine.generate(prepared.message, {
    onStarted: (started) => {
      sse = new SseStream(context.exchange, { headers: cacheHeaders(started) });
      if (format.opening !== undefined) sse.sendJson(format.opening(meta));
    },
    onTokens: (tokens) => send(prepared.output.push(tokens.text)),
    onDone: (done) => {
      send(prepared.output.finish());
      sse.sendJson(format.finish(meta, finishReasonOf(done, new Array<never>(callCount))));
      if (includeUsage) sse.sendJson(format.usage(meta, done.usage));
      sse.send('[DONE]');
      sse.end();
    },
    onFailed: (error) => {
      if (!sse.isOpen) return context.sendError(SemanticError.fromPayload(error));
      context.log.warn({ code: error.code, reason: error.message }, 'generation failed mid-stream');
      sse.sendJson(openAIErrorBody(error));
      sse.end();
    },
  });
  abortOnDisconnect(context, generation);
}

/** The fields both endpoints' requests share that serving them reads. */
export interface OpenAIRequest {
  model: string;
  user?: string | null | undefined;
  stream?: boolean | null | undefined;
  stream_options?: { include_usage?: boolean | null | undefined } | null | undefined;
}

/** A request ready to run: its protocol message, and how its output is read. */
export interface PreparedRequest {
  message: GenerateMessage;
  output: OutputReader;
}

/** One OpenAI endpoint: how its requests name their agent, become a generate message, and are worded. */
export interface OpenAIEndpoint<R extends OpenAIRequest> {
  /** `chatcmpl` or `cmpl`, as OpenAI's ids. */
  idPrefix: string;
  format: CompletionFormat;
  /** What names the agent when neither a header nor `user` does (shared/agent-id.ts). */
  opening(request: R): ChatMessage[];
  /** `model`: the served model, whose tool-call syntax chat requests with tools need. */
  prepare(request: R, requestId: string, agentId: string, model: ModelSummary): PreparedRequest;
}

/**
 * Serves a parsed request the same way for both endpoints: the served model, the agent and its rate
 * limit, then the generation answered as one JSON body or as SSE chunks.
 */
export function serveOpenAI<R extends OpenAIRequest>(context: RequestContext, engine: ChatEngine, agentGate: AgentGate, request: R, endpoint: OpenAIEndpoint<R>): void {
  const model = servedModel(engine, request.model, notServed);
  const { agentId, derived } = resolveAgent({
    headers: context.exchange.headers,
    bodyField: { value: request.user ?? undefined, param: 'user' },
    messages: endpoint.opening(request),
  });
  const shareScope = agentGate(agentId, context.exchange.headers);
  const prepared = endpoint.prepare(request, context.requestId, agentId, model);
  prepared.message = agentTerms(prepared.message, shareScope, derived);
  const meta = newCompletionMeta(model.id, Date.now(), endpoint.idPrefix);
  if (request.stream === true) completeAsStream(context, engine, prepared, meta, endpoint.format, request.stream_options?.include_usage === true);
  else completeAsJson(context, engine, prepared, meta, endpoint.format);
}

/** A chat request with tools has its output read for calls in the served model's syntax. */
function prepareChat(request: ChatCompletionRequest, requestId: string, agentId: string, model: ModelSummary): PreparedRequest {
  const { message, tools } = toChatGeneration(request, requestId, agentId, model.toolFormat);
  if (tools.parseFormat === undefined) return { message, output: textOutput() };
  const calls = new ToolCallStream(tools.parseFormat);
  return { message, output: request.parallel_tool_calls === false ? firstCallOnly(calls) : calls };
}

const chatEndpoint: OpenAIEndpoint<ChatCompletionRequest> = { idPrefix: 'chatcmpl', format: chatFormat, opening: chatMessages, prepare: prepareChat };

async function chatCompletions(context: RequestContext, engine: ChatEngine, agentGate: AgentGate): Promise<void> {
  serveOpenAI(context, engine, agentGate, parseChatCompletionRequest(await context.readJson()), chatEndpoint);
}

function listModels(context: RequestContext, engine: ChatEngine, readyAt: () => number): void {
  const model = engine.model;
  if (model === undefined) throw SemanticError.fromPayload(engine.unavailable() ?? { code: ErrorCode.NotReady, message: 'The model is still loading.' });
  context.sendJson(200, { object: 'list', data: [{ id: model.id, object: 'model', created: readyAt(), owned_by: 'semantic' }] });
}

export function openAIRoutes(engine: ChatEngine, agentGate: AgentGate = noAgentLimit): Route[] {
  let readySeconds: number | undefined;
  // `created` of a model: when this server first saw it loaded.
  const readyAt = (): number => (readySeconds ??= Math.floor(Date.now() / 1000));
  return [
    { method: 'POST', path: '/v1/chat/completions', errorShape: openAIErrorBody, handle: (context) => chatCompletions(context, engine, agentGate) },
    { method: 'GET', path: '/v1/models', errorShape: openAIErrorBody, handle: (context) => listModels(context, engine, readyAt) },
  ];
}
