/**
 * The Responses family's sink (run-generation.ts). JSON: the finished response object. Stream: the
 * events of OpenAI's sequence, each with its `sequence_number` and named by its type —
 * `response.created`, `response.in_progress`, the output items' events (output-items.ts), then
 * `response.completed` (or `response.incomplete` when cut at `max_output_tokens`) carrying the whole
 * response. A failure mid-stream is an `error` event. Either way `finished` is told the response
 * before it goes out, so a stored one is found by the client's very next request.
 */
import type { ErrorPayload } from '../../../shared/errors.js';
import type { CompletedMessage } from '../../generation.js';
import type { OutputReader } from '../openai/output.js';
import type { JsonSink, SinkEvent, StreamSink } from '../run-generation.js';
import { finishedResponse, inProgressResponse, type ResponseObject, type ResponseSettings } from './bodies.js';
import { OutputAssembler, type ItemEvent } from './output-items.js';

export interface ResponseRun {
  settings: ResponseSettings;
  /** Reads the generated text: reasoning first for a reasoning model, then all text, or text and tool calls. */
  output: OutputReader;
  /** `include` asked for `reasoning.encrypted_content`. */
  carryReasoning: boolean;
  /** The finished response, before it is sent. */
  finished(response: ResponseObject): void;
}

const cutAtLength = (done: CompletedMessage): boolean => done.finishReason === 'length';

function finish(run: ResponseRun, assembler: OutputAssembler, done: CompletedMessage): { events: ItemEvent[]; response: ResponseObject } {
  const events = assembler.push(run.output.finish());
  events.push(...assembler.close(cutAtLength(done) ? 'incomplete' : 'completed'));
  const response = finishedResponse(run.settings, assembler.items, done.usage, cutAtLength(done));
  run.finished(response);
  return { events, response };
}

export function responseJsonSink(run: ResponseRun): JsonSink {
  const assembler = new OutputAssembler(run.carryReasoning);
  return {
    mode: 'json',
    text: (text) => void assembler.push(run.output.push(text)),
    body: (done) => finish(run, assembler, done).response,
  };
}

/** The `error` event's body: OpenAI's `ResponseErrorEvent`. */
export function errorEvent(error: ErrorPayload, sequenceNumber: number): { type: 'error'; code: string; message: string; param: string | null; sequence_number: number } {
  return { type: 'error', code: error.code, message: error.message, param: error.param ?? null, sequence_number: sequenceNumber };
}

export function responseStreamSink(run: ResponseRun): StreamSink {
  const assembler = new OutputAssembler(run.carryReasoning);
  let sequence = 0;
  const numbered = (events: ItemEvent[]): SinkEvent[] => events.map((event) => ({ json: { ...event, sequence_number: sequence++ }, name: event.type }));
  return {
    mode: 'stream',
    open: () =>
      numbered([
        { type: 'response.created', response: inProgressResponse(run.settings) },
        { type: 'response.in_progress', response: inProgressResponse(run.settings) },
      ]),
    text: (text) => numbered(assembler.push(run.output.push(text))),
    finish(done) {
      const { events, response } = finish(run, assembler, done);
      events.push({ type: response.status === 'incomplete' ? 'response.incomplete' : 'response.completed', response });
      return numbered(events);
    },
    error: (error) => ({ json: errorEvent(error, sequence++), name: 'error' }),
  };
}
