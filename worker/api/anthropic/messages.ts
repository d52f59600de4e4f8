/**
 * Anthropic-compatible routes: `POST /v1/messages` (JSON or SSE, run by run-generation.ts through the
 * Anthropic sink) and `POST /v1/messages/count_tokens`, on the same engine as the OpenAI routes, with
 * Anthropic's error body. `x-api-key`, `anthropic-version` and `anthropic-beta` are accepted and not
 * looked at here (keys are checked, if at all, before routes run; the beta fields a client sends with
 * its betas are declared in request-fields.ts), nor is the beta SDK's `?beta=true` query.
 */
import { agentTerms, resolveAgent } from '../../../shared/agent-id.js';
import type { GenerationEngine } from '../../generation.js';
import { noAgentLimit, type AgentGate } from '../../http/rate-limit.js';
import type { RequestContext, Route } from '../../http/router.js';
import { servedModel } from '../request-checks.js';
import { runGeneration } from '../run-generation.js';
import { anthropicErrorBody, newMessageMeta } from './bodies.js';
import { fittedMaxTokens, sequenceCapacity } from './fit-context.js';
import { asksForCaching } from './request-fields.js';
import { chatMessages } from './content.js';
import { chatInput, parseCountTokensRequest, parseMessagesRequest, requestReasoning, toGenerateMessage, toolUse } from './schema.js';
import { reasoningStartFor } from '../../tools/reasoning.js';
import { messageJsonSink, messageStreamSink } from './sink.js';

/** The real API's wording: the field, then what is wrong with it. */
const notServed = (requested: string, served: string): string => `model: the model '${requested}' does not exist; this server runs '${served}'.`;

/** What the routes need to know of the engine's settings. */
export interface AnthropicSettings {
  /** The engine's kvUnified: whether one sequence may use the whole context. */
  kvUnified: boolean;
}

async function createMessage(context: RequestContext, engine: GenerationEngine, agentGate: AgentGate, settings: AnthropicSettings): Promise<void> {
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
  const reasoning = requestReasoning(request, use);
  const maxTokens = await fittedMaxTokens(engine, chatInput(messages, use), request.max_tokens, sequenceCapacity(model, settings.kvUnified), reasoning);
  const message = agentTerms(toGenerateMessage(request, messages, context.requestId, agentId, use, maxTokens), shareScope, derived);
  const output = {
    meta: newMessageMeta(request.model, asksForCaching(request)),
    parsing: use.promptTools.length === 0 ? undefined : { format: model.toolFormat, maxCalls: use.maxCalls },
    reasoning: reasoningStartFor(model.reasoning, message.reasoning),
    requestId: context.requestId,
  };
  runGeneration(context, engine, message, request.stream === true ? messageStreamSink(output) : messageJsonSink(output));
}

async function countTokens(context: RequestContext, engine: GenerationEngine): Promise<void> {
  const request = parseCountTokensRequest(await context.readJson());
  const model = servedModel(engine, request.model, notServed);
  const use = toolUse(request, model.toolFormat);
  const inputTokens = await engine.countTokens(chatInput(chatMessages(request), use), requestReasoning(request, use));
  context.sendJson(200, { input_tokens: inputTokens }, { 'request-id': context.requestId });
}

export function anthropicRoutes(engine: GenerationEngine, agentGate: AgentGate = noAgentLimit, settings: AnthropicSettings = { kvUnified: true }): Route[] {
  return [
    { method: 'POST', path: '/v1/messages', errorShape: anthropicErrorBody, handle: (context) => createMessage(context, engine, agentGate, settings) },
    { method: 'POST', path: '/v1/messages/count_tokens', errorShape: anthropicErrorBody, handle: (context) => countTokens(context, engine) },
  ];
}
