/**
 * Anthropic's words for a message: the body, its usage and stop fields, the stream's first event and
 * the error body.
 *
 * Usage follows the real API's prompt-caching accounting, whose three prompt counts add up to the whole
 * prompt (what count_tokens reports):
 * - `cache_read_input_tokens`: the prompt tokens reused from the agent's cache (always reported: the
 *   cache here is automatic, and a client should see what it saved);
 * - `cache_creation_input_tokens`: the prompt tokens this request computed and left in the agent's
 *   cache for its next turn, reported only when the request marked something with `cache_control`, as
 *   the real API writes the cache only then; `input_tokens` is then 0, as the whole prompt is kept;
 * - `input_tokens`: without any `cache_control`, the prompt tokens this request computed.
 * Claude Code marks every request, so it sees what the real API would show it: the first turn a cache
 * write, each later turn a read of the earlier turns and a write of the new part.
 */
import { randomBytes } from 'node:crypto';
import { describeError, type ErrorPayload } from '../../../shared/errors.js';
import type { StartedMessage, Usage } from '../../../shared/protocol/messages.js';
import type { CompletedMessage } from '../../generation.js';
import type { OutputBlock, StreamEvent } from './blocks.js';

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

/** See the module comment; `caching`: the request marked something with `cache_control`. */
export function toAnthropicUsage(usage: Usage, caching = false): AnthropicUsage {
  const computed = usage.promptTokens - usage.cachedTokens;
  return {
    input_tokens: caching ? 0 : computed,
    output_tokens: usage.completionTokens,
    cache_creation_input_tokens: caching ? computed : 0,
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
  /** The request marked something with `cache_control` (usage reports cache writes). */
  caching: boolean;
}

export function newMessageMeta(model: string, caching = false): MessageMeta {
  return { id: `msg_${randomBytes(12).toString('hex')}`, model, caching };
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
    usage: toAnthropicUsage(done.usage, meta.caching),
  };
}

/** The stream's first event: the message with no content yet and the prompt's usage. */
export function messageStart(meta: MessageMeta, started: StartedMessage): StreamEvent {
  const usage = toAnthropicUsage({ promptTokens: started.promptTokens, cachedTokens: started.cachedTokens, completionTokens: 0 }, meta.caching);
  const message = { id: meta.id, type: 'message', role: 'assistant', model: meta.model, content: [], stop_reason: null, stop_sequence: null, usage };
  return { type: 'message_start', message };
}
