/**
 * The Responses API's words (the `openai` SDK's `Response`, `ResponseOutputItem` and `ResponseUsage`
 * types): ids, the response object, its output items and usage. `output_text` is not sent: the SDK
 * computes it from the output.
 */
import { randomBytes } from 'node:crypto';
import type { Usage } from '../../../shared/protocol/messages.js';

/** A fresh id as OpenAI spells them: `resp_…`, `msg_…`, `fc_…`, `call_…` and 48 hex digits. */
export const newId = (prefix: 'resp' | 'msg' | 'fc' | 'call'): string => `${prefix}_${randomBytes(24).toString('hex')}`;

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

export type OutputItem = MessageItem | FunctionCallItem;

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
    // Reasoning output items come with reasoning models (issue 15, capability 2); none are counted yet.
    output_tokens_details: { reasoning_tokens: 0 },
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
}

export interface ResponseObject extends ResponseSettings {
  object: 'response';
  status: ResponseStatus;
  background: false;
  error: null;
  incomplete_details: { reason: 'max_output_tokens' } | null;
  output: OutputItem[];
  reasoning: { effort: null; summary: null };
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
    reasoning: { effort: null, summary: null },
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
