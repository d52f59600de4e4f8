/**
 * `POST /v1/completions`: OpenAI's legacy completions, a raw prompt continued with no chat template,
 * run exactly as chat completions are (serve.ts: admission, usage, cache headers, SSE, errors) and
 * worded as OpenAI words them: `text_completion` bodies and chunks with `choices[0].text`.
 */
import type { Usage } from '../../../shared/protocol/messages.js';
import type { CompletedMessage, GenerationEngine } from '../../generation.js';
import { parseCompletionRequest, toCompletionGenerateMessage, type CompletionRequest } from './completions-schema.js';
import { openAIErrorBody, toOpenAIUsage, usageChunk, type ClientFinishReason, type CompletionMeta } from './bodies.js';
import { textOutput } from './output.js';
import { serveOpenAI, type OpenAIEndpoint } from './serve.js';
import type { CompletionFormat } from './sink.js';
import { noAgentLimit, type AgentGate } from '../../http/rate-limit.js';
import type { RequestContext, Route } from '../../http/router.js';

const object = 'text_completion';

/** Body and chunks alike: one choice of `text`; the finish reason only once generation ended. */
function textCompletion(meta: CompletionMeta, text: string, finishReason: ClientFinishReason | null): { [field: string]: unknown } {
  return { id: meta.id, object, created: meta.created, model: meta.model, choices: [{ text, index: 0, logprobs: null, finish_reason: finishReason }] };
}

export const completionFormat: CompletionFormat = {
  body: (meta: CompletionMeta, text: string, done: CompletedMessage) => ({ ...textCompletion(meta, text, done.finishReason), usage: toOpenAIUsage(done.usage) }),
  text: (meta, text) => textCompletion(meta, text, null),
  finish: (meta, finishReason) => textCompletion(meta, '', finishReason),
  usage: (meta, usage: Usage) => usageChunk(meta, usage, object),
};

const endpoint: OpenAIEndpoint<CompletionRequest> = {
  idPrefix: 'cmpl',
  format: completionFormat,
  // With no user or header, a prompt's agent is named by the prompt, as a chat's by its opening.
  opening: (request) => [{ role: 'user', content: request.prompt }],
  prepare: (request, requestId, agentId) => ({ message: toCompletionGenerateMessage(request, requestId, agentId), output: textOutput() }),
};

async function completions(context: RequestContext, engine: GenerationEngine, agentGate: AgentGate): Promise<void> {
  serveOpenAI(context, engine, agentGate, parseCompletionRequest(await context.readJson()), endpoint);
}

export function completionRoutes(engine: GenerationEngine, agentGate: AgentGate = noAgentLimit): Route[] {
  return [{ method: 'POST', path: '/v1/completions', errorShape: openAIErrorBody, handle: (context) => completions(context, engine, agentGate) }];
}
