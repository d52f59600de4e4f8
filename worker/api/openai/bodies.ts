/**
 * OpenAI's words for a completion: the response body, the stream's chunks, usage and the error body.
 * Chat completions and legacy completions (completions.ts) both build on these.
 */
import { randomBytes } from 'node:crypto';
import type { Usage } from '../../../shared/protocol/messages.js';
import type { CompletedMessage } from '../../generation.js';
import { houseErrorBody } from '../../http/error-body.js';
import type { OpenAIToolCall } from './tools.js';

export type { HouseErrorBody as OpenAIErrorBody } from '../../http/error-body.js';

/** The house error shape is laid out as OpenAI's error object, so OpenAI's routes use it as it is. */
export const openAIErrorBody = houseErrorBody;

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
  /** Reasoning models only: completion tokens generated inside the think block. */
  completion_tokens_details?: { reasoning_tokens: number };
}

export function toOpenAIUsage(usage: Usage): OpenAIUsage {
  return {
    prompt_tokens: usage.promptTokens,
    completion_tokens: usage.completionTokens,
    total_tokens: usage.promptTokens + usage.completionTokens,
    prompt_tokens_details: { cached_tokens: usage.cachedTokens },
    ...(usage.reasoningTokens === undefined ? {} : { completion_tokens_details: { reasoning_tokens: usage.reasoningTokens } }),
  };
}

export type ClientFinishReason = CompletedMessage['finishReason'] | 'tool_calls';

/** A generation that made calls ended for them, unless it was cut at max tokens. */
export function finishReasonOf(done: CompletedMessage, calls: number): ClientFinishReason {
  return calls > 0 && done.finishReason !== 'length' ? 'tool_calls' : done.finishReason;
}

/**
 * Content is null when the model only called tools, as OpenAI words it. A reasoning model's think
 * block is `reasoning_content`, as llama-server, vLLM and DeepSeek's API return it (absent when empty).
 */
export function completionBody(meta: CompletionMeta, text: string, done: CompletedMessage, calls: readonly OpenAIToolCall[] = [], reasoning = ''): unknown {
  const answer = calls.length === 0 ? { role: 'assistant', content: text } : { role: 'assistant', content: text === '' ? null : text, tool_calls: calls };
  const message = reasoning === '' ? answer : { ...answer, reasoning_content: reasoning };
  return {
    id: meta.id,
    object: 'chat.completion',
    created: meta.created,
    model: meta.model,
    choices: [{ index: 0, message, logprobs: null, finish_reason: finishReasonOf(done, calls.length) }],
    usage: toOpenAIUsage(done.usage),
  };
}

type ChunkDelta = { role?: 'assistant'; content?: string; reasoning_content?: string; tool_calls?: (OpenAIToolCall & { index: number })[] };

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
