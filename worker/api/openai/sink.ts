/**
 * The OpenAI family's sink (run-generation.ts): one JSON body, or chunks ending in `[DONE]`. Chat and
 * legacy completions differ only in their `CompletionFormat`; a stream's error is the OpenAI error
 * body as a data event.
 */
import type { Usage } from '../../../shared/protocol/messages.js';
import type { ParsedToolCall } from '../../tools/tool-calls.js';
import type { CompletedMessage } from '../../generation.js';
import type { JsonSink, SinkEvent, StreamSink } from '../run-generation.js';
import { finishReasonOf, openAIErrorBody, type ClientFinishReason, type CompletionMeta } from './bodies.js';
import type { ModelOutput, OutputReader } from './output.js';

/** How one OpenAI endpoint words a completion: its body and its chunks. */
export interface CompletionFormat {
  /** `calls`: parsed from the output (chat with tools only); `reasoning`: a reasoning model's think block (chat only). */
  body(meta: CompletionMeta, text: string, done: CompletedMessage, calls?: ParsedToolCall[], reasoning?: string): unknown;
  /** Sent once the request is admitted, before any text (chat's role chunk); legacy completions have none. */
  opening?(meta: CompletionMeta): unknown;
  text(meta: CompletionMeta, text: string): unknown;
  /** Reasoning as it is read (chat's `reasoning_content` deltas); comes before any text. */
  reasoning?(meta: CompletionMeta, reasoning: string): unknown;
  /** Calls completed by a delta, numbered from `firstIndex` in the stream; only chat has them. */
  toolCalls?(meta: CompletionMeta, calls: ParsedToolCall[], firstIndex: number): unknown;
  /** The chunk that carries the finish reason. */
  finish(meta: CompletionMeta, finishReason: ClientFinishReason): unknown;
  usage(meta: CompletionMeta, usage: Usage): unknown;
}

/** One completion, as its endpoint words it: `output` reads the generated text. */
export interface Completion {
  format: CompletionFormat;
  meta: CompletionMeta;
  output: OutputReader;
}

/** All the output, gathered into one body when generation ends. */
export function completionJsonSink({ format, meta, output }: Completion): JsonSink {
  const gathered: Required<ModelOutput> = { reasoning: '', text: '', calls: [] };
  const gather = (part: ModelOutput): void => {
    gathered.reasoning += part.reasoning ?? '';
    gathered.text += part.text;
    gathered.calls.push(...part.calls);
  };
  return {
    mode: 'json',
    text: (text) => gather(output.push(text)),
    body(done) {
      gather(output.finish());
      return format.body(meta, gathered.text, done, gathered.calls, gathered.reasoning);
    },
  };
}

const json = (value: unknown): SinkEvent => ({ json: value });

/** Chunks as the output is read; `includeUsage`: the usage chunk before `[DONE]`. */
export function completionStreamSink({ format, meta, output }: Completion, includeUsage: boolean): StreamSink {
  let callCount = 0;
  const chunks = (part: ModelOutput): SinkEvent[] => {
    const events: SinkEvent[] = [];
    if (part.reasoning !== undefined && part.reasoning !== '' && format.reasoning !== undefined) events.push(json(format.reasoning(meta, part.reasoning)));
    if (part.text !== '') events.push(json(format.text(meta, part.text)));
    if (part.calls.length > 0 && format.toolCalls !== undefined) events.push(json(format.toolCalls(meta, part.calls, callCount)));
    callCount += part.calls.length;
    return events;
  };
  return {
    mode: 'stream',
    open: () => (format.opening === undefined ? [] : [json(format.opening(meta))]),
    text: (text) => chunks(output.push(text)),
    finish(done) {
      const events = chunks(output.finish()); // counts the last calls before the finish reason is chosen
      events.push(json(format.finish(meta, finishReasonOf(done, callCount))));
      if (includeUsage) events.push(json(format.usage(meta, done.usage)));
      events.push({ raw: '[DONE]' });
      return events;
    },
    error: (error) => json(openAIErrorBody(error)),
  };
}
