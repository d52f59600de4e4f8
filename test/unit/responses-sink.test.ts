// The Responses sink: the JSON body and the stream's events for text, calls and both, in the order the
// `openai` SDK's ResponseStream accumulates them (an item before its part, a part before its deltas),
// numbered from 0; a cut at max_output_tokens is `incomplete`; a failure is an `error` event.
import t from 'tap';
import type { CompletedMessage } from '../../worker/generation.js';
import type { ResponseObject, ResponseSettings } from '../../worker/api/responses/bodies.js';
import { responseJsonSink, responseStreamSink, type ResponseRun } from '../../worker/api/responses/sink.js';
import { afterReasoning, textOutput } from '../../worker/api/openai/output.js';
import { ReasoningStream } from '../../worker/tools/reasoning.js';
import { reasoningFromCarried } from '../../worker/api/responses/bodies.js';
import { ToolCallStream } from '../../worker/tools/tool-calls.js';
import type { SinkEvent, StreamSink } from '../../worker/api/run-generation.js';
import type { StartedMessage } from '../../shared/protocol/messages.js';

const settings = { id: 'resp_1', created_at: 1, model: 'tiny', instructions: null, metadata: {} } as unknown as ResponseSettings;
const done = (finishReason: 'stop' | 'length'): CompletedMessage =>
  ({ type: 'done', requestId: 'r', finishReason, usage: { promptTokens: 10, completionTokens: 4, cachedTokens: 6 } }) as unknown as CompletedMessage;

function run(calls = false): ResponseRun & { stored: ResponseObject[] } {
  const stored: ResponseObject[] = [];
  return { settings, output: calls ? new ToolCallStream('hermes') : textOutput(), carryReasoning: false, finished: (response) => stored.push(response), stored };
}

type Event = { type: string; sequence_number: number } & Record<string, unknown>;
const events = (sent: SinkEvent[]): Event[] => sent.map((event) => ('json' in event ? (event.json as Event) : ({} as Event)));

function streamAll(sink: StreamSink, texts: string[], finish: CompletedMessage): { sent: SinkEvent[]; all: Event[] } {
  const sent = [...sink.open({} as StartedMessage), ...texts.flatMap((text) => sink.text(text)), ...sink.finish(finish)];
  return { sent, all: events(sent) };
}

t.test('JSON: the finished response, its usage, stored before it is sent', async (t) => {
  const r = run();
  const sink = responseJsonSink(r);
  if (sink.mode !== 'json') return t.fail('a JSON sink');
  sink.text('Hel');
  sink.text('lo');
  const body = sink.body(done('stop')) as ResponseObject;
  t.match(body, { id: 'resp_1', object: 'response', status: 'completed', incomplete_details: null, error: null });
  t.equal(body.output.length, 1);
  t.match(body.output[0], { type: 'message', role: 'assistant', status: 'completed', content: [{ type: 'output_text', text: 'Hello', annotations: [] }] });
  t.strictSame(body.usage, { input_tokens: 10, input_tokens_details: { cached_tokens: 6 }, output_tokens: 4, output_tokens_details: { reasoning_tokens: 0 }, total_tokens: 14 });
  t.equal(r.stored[0], body, 'finished was told this very response');
  const cut = responseJsonSink(run());
  if (cut.mode === 'json')
    t.match(cut.body(done('length')), { status: 'incomplete', incomplete_details: { reason: 'max_output_tokens' }, output: [{ type: 'message', status: 'incomplete' }] });
});

t.test('stream: the text sequence, every event named by its type and numbered from 0', async (t) => {
  const { sent, all } = streamAll(responseStreamSink(run()), ['Hel', 'lo'], done('stop'));
  t.strictSame(
    all.map((event) => event.type),
    [
      'response.created',
      'response.in_progress',
      'response.output_item.added',
      'response.content_part.added',
      'response.output_text.delta',
      'response.output_text.delta',
      'response.output_text.done',
      'response.content_part.done',
      'response.output_item.done',
      'response.completed',
    ],
  );
  t.strictSame(
    all.map((event) => event.sequence_number),
    all.map((_, i) => i),
  );
  t.ok(
    sent.every((event) => 'name' in event && event.name === (event.json as Event).type),
    'SSE event names',
  );
  t.match(all[0], { response: { status: 'in_progress', output: [], usage: null } });
  t.match(all[2], { output_index: 0, item: { type: 'message', status: 'in_progress', content: [] } });
  t.match(all[3], { content_index: 0, part: { type: 'output_text', text: '' } });
  t.match(all[6], { text: 'Hello' });
  t.match(all[8], { item: { status: 'completed', content: [{ text: 'Hello' }] } });
  t.match(all[9], { response: { status: 'completed', output: [{ content: [{ text: 'Hello' }] }], usage: { total_tokens: 14 } } });
});

t.test('stream: text then a call closes the message before the function_call item', async (t) => {
  const r = run(true);
  const { all } = streamAll(responseStreamSink(r), ['Sure. ', '<tool_call>\n{"name": "f", "arguments": {"a": 1}}\n</tool_call>'], done('stop'));
  const types = all.map((event) => event.type).filter((type) => type !== 'response.output_text.delta');
  t.strictSame(types, [
    'response.created',
    'response.in_progress',
    'response.output_item.added',
    'response.content_part.added',
    'response.output_text.done',
    'response.content_part.done',
    'response.output_item.done',
    'response.output_item.added',
    'response.function_call_arguments.delta',
    'response.function_call_arguments.done',
    'response.output_item.done',
    'response.completed',
  ]);
  const added = all.filter((event) => event.type === 'response.output_item.added');
  t.match(added[1], { output_index: 1, item: { type: 'function_call', name: 'f', arguments: '', status: 'in_progress' } });
  t.match(
    all.find((event) => event.type === 'response.function_call_arguments.done'),
    { output_index: 1, name: 'f', arguments: '{"a":1}' },
  );
  const output = r.stored[0]?.output ?? [];
  t.match(output, [
    { type: 'message', content: [{ text: 'Sure.' }] },
    { type: 'function_call', name: 'f', arguments: '{"a":1}', status: 'completed' },
  ]);
  t.match(output[1], { call_id: /^call_[0-9a-f]{48}$/, id: /^fc_/ });
});

t.test('stream: no output is an empty message; a cut is response.incomplete; a failure is an error event', async (t) => {
  const sink = responseStreamSink(run());
  const { all } = streamAll(sink, [], done('length'));
  t.strictSame(all.map((event) => event.type).slice(2), [
    'response.output_item.added',
    'response.content_part.added',
    'response.output_text.done',
    'response.content_part.done',
    'response.output_item.done',
    'response.incomplete',
  ]);
  t.match(all.at(-1), { response: { status: 'incomplete', incomplete_details: { reason: 'max_output_tokens' } } });
  const failed = sink.error({ code: 'ERR_ENGINE_DEAD', message: 'gone' });
  t.strictSame(failed, { json: { type: 'error', code: 'ERR_ENGINE_DEAD', message: 'gone', param: null, sequence_number: all.length }, name: 'error' });
});

t.test('stream: the think block is a reasoning item before the message, its text as reasoning_text deltas', async (t) => {
  const r = { ...run(), output: afterReasoning(new ReasoningStream('reasoning'), textOutput()), carryReasoning: true };
  const usage = { promptTokens: 10, completionTokens: 9, cachedTokens: 0, reasoningTokens: 6 };
  const { all } = streamAll(responseStreamSink(r), ['\nSo', ' then', '</think>\n\nHi'], { ...done('stop'), usage });
  t.strictSame(
    all.map((event) => event.type),
    [
      'response.created',
      'response.in_progress',
      'response.output_item.added',
      'response.content_part.added',
      'response.reasoning_text.delta',
      'response.reasoning_text.delta',
      'response.reasoning_text.done',
      'response.content_part.done',
      'response.output_item.done',
      'response.output_item.added',
      'response.content_part.added',
      'response.output_text.delta',
      'response.output_text.done',
      'response.content_part.done',
      'response.output_item.done',
      'response.completed',
    ],
  );
  t.match(all[2], { output_index: 0, item: { type: 'reasoning', id: /^rs_[0-9a-f]{48}$/, summary: [], content: [], status: 'in_progress' } });
  t.match(all[3], { output_index: 0, content_index: 0, part: { type: 'reasoning_text', text: '' } });
  t.match(all[6], { output_index: 0, text: 'So then' });
  t.match(all[9], { output_index: 1, item: { type: 'message' } });
  const [reasoning, message] = r.stored[0]?.output ?? [];
  t.match(reasoning, { type: 'reasoning', status: 'completed', content: [{ type: 'reasoning_text', text: 'So then' }] });
  t.equal(reasoningFromCarried((reasoning as { encrypted_content: string }).encrypted_content), 'So then', 'include asked for encrypted_content');
  t.match(message, { type: 'message', content: [{ text: 'Hi' }] });
  t.match(r.stored[0]?.usage, { output_tokens: 9, output_tokens_details: { reasoning_tokens: 6 } });
});
