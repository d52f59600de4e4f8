/**
 * Anthropic-compatible routes: `POST /v1/messages` (JSON or SSE) and `POST /v1/messages/count_tokens`,
 * on the same engine as the OpenAI routes. Everything Anthropic-shaped lives here: the message body,
 * its usage, the stream's named events and the error body. `x-api-key` and `anthropic-version` are
 * accepted and not looked at here (keys are checked, if at all, before routes run).
 *
 * Usage follows the real API's prompt-caching accounting: `input_tokens` are the prompt tokens this
 * request computed, `cache_read_input_tokens` those reused from the agent's cache, so their sum is the
 * whole prompt (what count_tokens reports). `cache_creation_input_tokens` is always 0: caching here
 * is automatic and costs nothing extra, so no token is ever billed as a cache write.
 */
import { randomBytes } from 'node:crypto';
import { describeError, SemanticError, type ErrorPayload } from '../../../shared/errors.js';
import type { GenerateInput, GenerateMessage, StartedMessage, Usage } from '../../../shared/protocol/messages.js';
import { agentTerms, resolveAgent } from '../../../shared/agent-id.js';
import type { CompletedMessage, Generation } from '../../engine-client.js';
import { chatInput, chatMessages, parseCountTokensRequest, parseMessagesRequest, promptTools, toGenerateMessage, toolUse } from './schema.js';
import { BlockStream, outputBlocks, type CallParsing, type OutputBlock, type StreamEvent } from './blocks.js';
import { cacheHeaders, type ChatEngine } from '../openai/chat.js';
import { noAgentLimit, type AgentGate } from '../../http/rate-limit.js';
import type { RequestContext, Route } from '../../http/router.js';
import { SseStream } from '../../http/sse.js';
import { servedModel } from '../request-checks.js';

/** The real API's wording: the field, then what is wrong with it. */
const notServed = (requested: string, served: string): string => `model: the model '${requested}' does not exist; this server runs '${served}'.`;

/** What the Anthropic routes need from the engine client. */
export interface MessagesEngine extends ChatEngine {
  countTokens(input: GenerateInput): Promise<number>;
}

export interface AnthropicErrorBody {
  type: 'error';
  error: { type: string; message: string };
}

export function anthropicErrorBody(error: ErrorPayload): AnthropicErrorBody {
  return { type: 'error', error: { type: describeError(error.code).anthropicType, message: error.message } };
}

export interface AnthropicUsage {
  input_tokens: number;
  output_tokens: number;
  cache_creation_input_tokens: number;
  cache_read_input_tokens: number;
}

/** See the module comment: input_tokens + cache_read_input_tokens = the whole prompt. */
export function toAnthropicUsage(usage: Usage): AnthropicUsage {
  return {
    input_tokens: usage.promptTokens - usage.cachedTokens,
    output_tokens: usage.completionTokens,
    cache_creation_input_tokens: 0,
    cache_read_input_tokens: usage.cachedTokens,
  };
}

export type StopReason = 'end_turn' | 'max_tokens' | 'stop_sequence' | 'tool_use';

/**
 * Why the message ended, as both the JSON body and the stream's `message_delta` say it. A message that
 * made calls ends in `tool_use` whatever stopped generation after them: the client's next step is to
 * run the tools.
 */
export function toStopFields(done: Pick<CompletedMessage, 'finishReason' | 'stopSequence'>, calls = 0): { stop_reason: StopReason; stop_sequence: string | null } {
  if (calls > 0) return { stop_reason: 'tool_use', stop_sequence: null };
  if (done.finishReason === 'length') return { stop_reason: 'max_tokens', stop_sequence: null };
  if (done.stopSequence !== undefined) return { stop_reason: 'stop_sequence', stop_sequence: done.stopSequence };
  return { stop_reason: 'end_turn', stop_sequence: null };
}

/** Fields every event of one message shares. */
export interface MessageMeta {
  id: string;
  model: string;
}

export function newMessageMeta(model: string): MessageMeta {
  return { id: `msg_${randomBytes(12).toString('hex')}`, model };
}

export function messageBody(meta: MessageMeta, content: OutputBlock[], done: CompletedMessage): unknown {
  const calls = content.filter((block) => block.type === 'tool_use').length;
  return {
    id: meta.id,
    type: 'message',
    role: 'assistant',
    model: meta.model,
    content,
    ...toStopFields(done, calls),
    usage: toAnthropicUsage(done.usage),
  };
}

/** The stream's first event: the message with no content yet and the prompt's usage. */
export function messageStart(meta: MessageMeta, started: StartedMessage): StreamEvent {
  const usage = toAnthropicUsage({ promptTokens: started.promptTokens, cachedTokens: started.cachedTokens, completionTokens: 0 });
  const message = { id: meta.id, type: 'message', role: 'assistant', model: meta.model, content: [], stop_reason: null, stop_sequence: null, usage };
  return { type: 'message_start', message };
}

/** Headers the real API sends too: its SDKs expose `request-id` as the response's `_request_id`. */
function responseHeaders(context: RequestContext, started: StartedMessage): Record<string, string> {
  return { ...cacheHeaders(started), 'request-id': context.requestId };
}

function abortOnDisconnect(context: RequestContext, generation: Generation): void {
  context.exchange.onClose((aborted) => {
    if (aborted) generation.abort();
  });
}

function completeAsJson(context: RequestContext, engine: ChatEngine, message: GenerateMessage, meta: MessageMeta, parsing: CallParsing | undefined): void {
  let text = '';
  let headers: Record<string, string> = {};
  const generation = engine.generate(message, {
    onStarted: (started) => {
      headers = responseHeaders(context, started);
    },
    onTokens: (tokens) => {
      text += tokens.text;
    },
    onDone: (done) => context.sendJson(200, messageBody(meta, outputBlocks(text, parsing), done), headers),
    onFailed: (error) => context.sendError(SemanticError.fromPayload(error)),
  });
  abortOnDisconnect(context, generation);
}

export type { StreamEvent };

/** Sends `value` as an event named by its own `type`, as the real API does. */
function sendEvent(sse: SseStream, value: StreamEvent): void {
  sse.sendJson(value, value.type);
}

function finishStream(sse: SseStream, blocks: BlockStream, done: CompletedMessage): void {
  const calls = blocks.finish();
  sendEvent(sse, { type: 'message_delta', delta: toStopFields(done, calls), usage: toAnthropicUsage(done.usage) });
  sendEvent(sse, { type: 'message_stop' });
  sse.end();
}

/**
 * Headers go out on `started` (after admission), so refusals keep their real status; a failure after
 * that is an `error` event, after which the stream ends.
 */
function completeAsStream(context: RequestContext, engine: ChatEngine, message: GenerateMessage, meta: MessageMeta, parsing: CallParsing | undefined): void {
  let sse = new SseStream(context.exchange);
  const blocks = new BlockStream((event) => sendEvent(sse, event), parsing);
  const generation = engine.generate(message, {
    onStarted: (started) => {
      sse = new SseStream(context.exchange, { headers: responseHeaders(context, started) });
      sendEvent(sse, messageStart(meta, started));
      blocks.start();
    },
    onTokens: (tokens) => blocks.push(tokens.text),
    onDone: (done) => finishStream(sse, blocks, done),
    onFailed: (error) => {
      if (!sse.isOpen) return context.sendError(SemanticError.fromPayload(error));
      context.log.warn({ code: error.code, reason: error.message }, 'generation failed mid-stream');
      sendEvent(sse, { ...anthropicErrorBody(error) });
      sse.end();
    },
  });
  abortOnDisconnect(context, generation);
}


async function createMessage(context: RequestContext, engine: ChatEngine, agentGate: AgentGate): Promise<void> {
  const request = parseMessagesRequest(await context.readJson());
  const model = servedModel(engine, request.model, notServed);
  const messages = chatMessages(request);
  const { agentId, derived } = resolveAgent({
    headers: context.exchange.headers,
    bodyField: { value: request.metadata?.user_id ?? undefined, param: 'metadata.user_id', opaque: true },
    messages,
  });
  const shareScope = agentGate(agentId, context.exchange.headers);
  const use = toolUse(request, model.toolFormat);
  const message = agentTerms(toGenerateMessage(request, messages, context.requestId, agentId, use), shareScope, derived);
  const parsing = use.promptTools.length === 0 ? undefined : { format: model.toolFormat, maxCalls: use.maxCalls };
  const meta = newMessageMeta(model.id);
  if (request.stream === true) completeAsStream(context, engine, message, meta, parsing);
  else completeAsJson(context, engine, message, meta, parsing);
}

async function countTokens(context: RequestContext, engine: MessagesEngine): Promise<void> {
  const request = parseCountTokensRequest(await context.readJson());
  servedModel(engine, request.model, notServed);
  const inputTokens = await engine.countTokens(chatInput(chatMessages(request), { promptTools: promptTools(request) }));
  context.sendJson(200, { input_tokens: inputTokens }, { 'request-id': context.requestId });
}

export function anthropicRoutes(engine: MessagesEngine, agentGate: AgentGate = noAgentLimit): Route[] {
  return [
    { method: 'POST', path: '/v1/messages', errorShape: anthropicErrorBody, handle: (context) => createMessage(context, engine, agentGate) },
    { method: 'POST', path: '/v1/messages/count_tokens', errorShape: anthropicErrorBody, handle: (context) => countTokens(context, engine) },
  ];
}
