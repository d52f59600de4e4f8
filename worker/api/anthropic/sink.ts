/**
 * The Anthropic family's sink (run-generation.ts): the message as one JSON body, or as the real API's
 * named events (message_start, the content blocks' events, message_delta, message_stop; `error` after
 * a failure). Both send `request-id`, which Anthropic's SDKs expose as the response's `_request_id`.
 */
import type { JsonSink, SinkEvent, StreamSink } from '../run-generation.js';
import { anthropicErrorBody, messageBody, messageStart, toAnthropicUsage, toStopFields, type MessageMeta } from './bodies.js';
import { BlockStream, outputBlocks, type CallParsing, type StreamEvent } from './blocks.js';
import type { ReasoningStart } from '../../tools/reasoning.js';

/** One message: `parsing` is absent when the model was told of no tools. */
export interface MessageOutput {
  meta: MessageMeta;
  parsing: CallParsing | undefined;
  /** Where the output starts (worker/tools/reasoning.ts): anything but `answer` may begin with a thinking block. */
  reasoning: ReasoningStart;
  requestId: string;
}

/** Sent as an event named by its own `type`, as the real API does. */
const named = (event: StreamEvent): SinkEvent => ({ json: event, name: event.type });

/** The text gathered, read into blocks once generation ends. */
export function messageJsonSink({ meta, parsing, reasoning, requestId }: MessageOutput): JsonSink {
  let text = '';
  return {
    mode: 'json',
    headers: { 'request-id': requestId },
    text: (delta) => void (text += delta),
    body: (done) => messageBody(meta, outputBlocks(text, parsing, reasoning), done),
  };
}

export function messageStreamSink({ meta, parsing, reasoning, requestId }: MessageOutput): StreamSink {
  const pending: StreamEvent[] = [];
  const blocks = new BlockStream((event) => pending.push(event), parsing, reasoning);
  const take = (): SinkEvent[] => pending.splice(0).map(named);
  return {
    mode: 'stream',
    headers: { 'request-id': requestId },
    open(started) {
      pending.push(messageStart(meta, started));
      blocks.start();
      return take();
    },
    text(delta) {
      blocks.push(delta);
      return take();
    },
    finish(done) {
      const calls = blocks.finish();
      pending.push({ type: 'message_delta', delta: toStopFields(done, calls), usage: toAnthropicUsage(done.usage, meta.caching) }, { type: 'message_stop' });
      return take();
    },
    error: (error) => named({ ...anthropicErrorBody(error) }),
  };
}
