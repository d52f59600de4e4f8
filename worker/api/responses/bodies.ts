/**
 * The Responses API's words (the `openai` SDK's `Response`, `ResponseOutputItem` and `ResponseUsage`
 * types): ids, the response object, its output items and usage. `output_text` is not sent: the SDK
 * computes it from the output.
 */
import { randomBytes } from 'node:crypto';
import type { Usage } from '../../../shared/protocol/messages.js';

/** A fresh id as OpenAI spells them: `resp_…`, `msg_…`, `rs_…`, `fc_…`, `call_…` and 48 hex digits. */
export const newId = (prefix: 'resp' | 'msg' | 'rs' | 'fc' | 'call'): string => `${prefix}_${randomBytes(24).toString('hex')}`;

export interface OutputText {
  type: 'output_text';
  text: string;
  annotations: [];
  logprobs: [];
}

export type ItemStatus = 'in_progress' | 'completed' | 'incomplete';

export interface MessageItem {
  type: 'message';
  id: string;
  status: ItemStatus;
  role: 'assistant';
  content: OutputText[];
}

export interface FunctionCallItem {
  type: 'function_call';
  id: string;
  call_id: string;
  name: string;
  /** JSON text. */
  arguments: string;
  status: ItemStatus;
}

export interface ReasoningText {
  type: 'reasoning_text';
  text: string;
}

/**
 * A reasoning model's think block (the SDK's `ResponseReasoningItem`), before the answer's items. Its
 * text is `content`, as OpenAI's open-weight models and vLLM give it; `summary` stays empty, since no
 * summary is written. `encrypted_content` only when `include` asks for it (`carriedReasoning`).
 */
export interface ReasoningItem {
  type: 'reasoning';
  id: string;
  summary: [];
  content: ReasoningText[];
  encrypted_content?: string;
  status: ItemStatus;
}

/** Marks our own `encrypted_content`, so another server's is told apart (and ignored). */
const carriedPrefix = 'semantic-reasoning:';

/**
 * `encrypted_content`, for clients that keep no state (`store: false`) and send reasoning back only
 * this way: not encrypted (the text is in `content` anyway), an opaque base64 copy the server reads back.
 */
export const carriedReasoning = (text: string): string => Buffer.from(carriedPrefix + text).toString('base64');

/** The text of our own `encrypted_content`; undefined for anything else (OpenAI's really is encrypted). */
export function reasoningFromCarried(value: string): string | undefined {
  const decoded = Buffer.from(value, 'base64').toString('utf8');
  return decoded.startsWith(carriedPrefix) ? decoded.slice(carriedPrefix.length) : undefined;
}

export type OutputItem = ReasoningItem | MessageItem | FunctionCallItem;

export interface ResponseUsage {
  input_tokens: number;
  input_tokens_details: { cached_tokens: number };
  output_tokens: number;
  output_tokens_details: { reasoning_tokens: number };
  total_tokens: number;
}

export function toResponseUsage(usage: Usage): ResponseUsage {
  return {
    input_tokens: usage.promptTokens,
    input_tokens_details: { cached_tokens: usage.cachedTokens },
    output_tokens: usage.completionTokens,
    // The think block's tokens, its close included (the engine counts them); part of output_tokens.
    output_tokens_details: { reasoning_tokens: usage.reasoningTokens ?? 0 },
    total_tokens: usage.promptTokens + usage.completionTokens,
  };
}

export type ResponseStatus = 'in_progress' | 'completed' | 'incomplete';

/** The request's settings a response echoes, fixed when it is created. */
export interface ResponseSettings {
  id: string;
  /** Unix seconds. */
  created_at: number;
  model: string;
  instructions: string | null;
  max_output_tokens: number | null;
  metadata: Record<string, string>;
  parallel_tool_calls: boolean;
  previous_response_id: string | null;
  store: boolean;
  temperature: number;
  top_p: number;
  text: { format: Record<string, unknown> };
  tool_choice: unknown;
  tools: unknown[];
  truncation: 'auto' | 'disabled';
  user: string | null;
  /** As requested; no summary is ever written, whatever `summary` asks. */
  reasoning: { effort: string | null; summary: string | null };
}

export interface ResponseObject extends ResponseSettings {
  object: 'response';
  status: ResponseStatus;
  background: false;
  error: null;
  incomplete_details: { reason: 'max_output_tokens' } | null;
  output: OutputItem[];
  service_tier: 'default';
  usage: ResponseUsage | null;
  completed_at?: number;
}

/** The response while it runs (`response.created`, `response.in_progress`): no output, no usage yet. */
export function inProgressResponse(settings: ResponseSettings): ResponseObject {
  return {
    ...settings,
    object: 'response',
    status: 'in_progress',
    background: false,
    error: null,
    incomplete_details: null,
    output: [],
    service_tier: 'default',
    usage: null,
  };
}

/** The response once generation ended: cut at `max_output_tokens` it is `incomplete`, as OpenAI says it. */
export function finishedResponse(settings: ResponseSettings, output: OutputItem[], usage: Usage, cutAtLength: boolean, now = Date.now()): ResponseObject {
  return {
    ...inProgressResponse(settings),
    status: cutAtLength ? 'incomplete' : 'completed',
    incomplete_details: cutAtLength ? { reason: 'max_output_tokens' } : null,
    output,
    usage: toResponseUsage(usage),
    completed_at: Math.floor(now / 1000),
  };
}
