/**
 * OpenAI-compatible routes: `POST /v1/chat/completions` (JSON or SSE) and `GET /v1/models`. A chat
 * completion is served as both OpenAI endpoints are (serve.ts) and worded by `chatFormat`; the status
 * of an error comes from `describeError`, the engine only ever reports codes.
 */
import { ErrorCode, SemanticError } from '../../../shared/errors.js';
import type { ModelSummary } from '../../../shared/protocol/messages.js';
import { ToolCallStream } from '../../tools/tool-calls.js';
import type { GenerationEngine } from '../../generation.js';
import { noAgentLimit, type AgentGate } from '../../http/rate-limit.js';
import type { RequestContext, Route } from '../../http/router.js';
import { servedIds } from '../request-checks.js';
import { completionBody, completionChunk, openAIErrorBody, usageChunk } from './bodies.js';
import { afterReasoning, firstCallOnly, textOutput } from './output.js';
import { ReasoningStream, reasoningStartFor } from '../../tools/reasoning.js';
import { chatMessages, parseChatCompletionRequest, toChatGeneration, type ChatCompletionRequest } from './schema.js';
import { serveOpenAI, type OpenAIEndpoint, type PreparedRequest } from './serve.js';
import type { CompletionFormat } from './sink.js';
import { toOpenAIToolCall } from './tools.js';

const chatFormat: CompletionFormat = {
  body: (meta, text, done, calls = [], reasoning = '') => completionBody(meta, text, done, calls.map(toOpenAIToolCall), reasoning),
  opening: (meta) => completionChunk(meta, { role: 'assistant', content: '' }),
  text: (meta, text) => completionChunk(meta, { content: text }),
  reasoning: (meta, reasoning) => completionChunk(meta, { reasoning_content: reasoning }),
  toolCalls: (meta, calls, firstIndex) => completionChunk(meta, { tool_calls: calls.map((call, i) => ({ index: firstIndex + i, ...toOpenAIToolCall(call) })) }),
  finish: (meta, finishReason) => completionChunk(meta, {}, finishReason),
  usage: (meta, usage) => usageChunk(meta, usage),
};

/** A reasoning model's think block is split off first; a chat request with tools has the answer read for calls in the served model's syntax. */
function prepareChat(request: ChatCompletionRequest, requestId: string, agentId: string, model: ModelSummary): PreparedRequest {
  const { message, tools } = toChatGeneration(request, requestId, agentId, model.toolFormat);
  const calls = tools.parseFormat === undefined ? undefined : new ToolCallStream(tools.parseFormat);
  const answer = calls === undefined ? textOutput() : request.parallel_tool_calls === false ? firstCallOnly(calls) : calls;
  const start = reasoningStartFor(model.reasoning, message.reasoning);
  return { message, output: start === 'answer' ? answer : afterReasoning(new ReasoningStream(start), answer) };
}

const chatEndpoint: OpenAIEndpoint<ChatCompletionRequest> = { idPrefix: 'chatcmpl', format: chatFormat, opening: chatMessages, prepare: prepareChat };

async function chatCompletions(context: RequestContext, engine: GenerationEngine, agentGate: AgentGate): Promise<void> {
  serveOpenAI(context, engine, agentGate, parseChatCompletionRequest(await context.readJson()), chatEndpoint);
}

function listModels(context: RequestContext, engine: GenerationEngine, readyAt: () => number): void {
  const model = engine.model;
  if (model === undefined) throw SemanticError.fromPayload(engine.unavailable() ?? { code: ErrorCode.NotReady, message: 'The model is still loading.' });
  const data = servedIds(engine, model).map((id) => ({ id, object: 'model', created: readyAt(), owned_by: 'semantic' }));
  context.sendJson(200, { object: 'list', data });
}

export function openAIRoutes(engine: GenerationEngine, agentGate: AgentGate = noAgentLimit): Route[] {
  let readySeconds: number | undefined;
  // `created` of a model: when this server first saw it loaded.
  const readyAt = (): number => (readySeconds ??= Math.floor(Date.now() / 1000));
  return [
    { method: 'POST', path: '/v1/chat/completions', errorShape: openAIErrorBody, handle: (context) => chatCompletions(context, engine, agentGate) },
    { method: 'GET', path: '/v1/models', errorShape: openAIErrorBody, handle: (context) => listModels(context, engine, readyAt) },
  ];
}
