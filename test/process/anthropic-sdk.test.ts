// The Anthropic Messages routes end to end with the official SDK against the real `semantic serve`
// process: greedy output equals a cold single-sequence run, usage agrees with count_tokens, the
// stream's events come exactly as the real API sends them, a second turn of the same
// metadata.user_id reads the agent's cache, and errors arrive as the SDK's typed errors.
import t from 'tap';
import Anthropic, { APIError, BadRequestError, NotFoundError } from '@anthropic-ai/sdk';
import { Stream } from '@anthropic-ai/sdk/streaming';
import { greedyReference, type GreedyReference } from '../helpers/greedy.js';
import { tinyModelPath } from '../helpers/model.js';
import { startServer } from '../helpers/server.js';
import type { ChatMessage } from '../../shared/protocol/messages.js';

const modelPath = await tinyModelPath();
const server = await startServer(['serve', '--port', '0', '--model', modelPath, '--model-id', 'tiny', '--threads', '1', '--context-size', '2048', '--max-sequences', '4']);
t.teardown(() => server.stop());

const client = new Anthropic({ baseURL: server.url, apiKey: 'not-checked-here', maxRetries: 0 });
const MAX = 12;
const system = 'You plan trips.';

type Turn = { role: 'user' | 'assistant'; content: string };
const asChat = (turns: Turn[]): ChatMessage[] => [{ role: 'system', content: system }, ...turns];

/** What the engine keeps after a turn: the prompt and every generated token but the last (never decoded). */
function expectedReuse(previous: GreedyReference, next: GreedyReference): number {
  const cached = [...previous.prompt, ...previous.tokens.slice(0, -1)];
  let k = 0;
  while (k < cached.length && k < next.prompt.length && cached[k] === next.prompt[k]) k++;
  return Math.min(k, next.prompt.length - 1);
}

const stopReason = (reference: GreedyReference): string => (reference.tokens.length === MAX ? 'max_tokens' : 'end_turn');

async function rejection(promise: Promise<unknown>): Promise<APIError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof APIError) return error;
    throw error;
  }
  throw new Error('expected the request to fail');
}

t.test('non-streaming: greedy text, usage = count_tokens on a cold cache; the second turn reads the cache', async (t) => {
  const first: Turn[] = [{ role: 'user', content: 'Plan a trip to Peru.' }];
  const cold1 = await greedyReference(modelPath, asChat(first), MAX);
  const counted = await client.messages.countTokens({ model: 'tiny', system, messages: first });
  t.equal(counted.input_tokens, cold1.promptTokens, 'count_tokens uses the generation template and tokenizer');

  const params = { model: 'tiny', system, max_tokens: MAX, temperature: 0, metadata: { user_id: 'anthropic-alice' } };
  const { data: one, response } = await client.messages.create({ ...params, messages: first }).withResponse();
  t.equal(response.headers.get('x-semantic-cache'), 'miss');
  t.equal(response.headers.get('x-semantic-prompt-tokens-computed'), String(cold1.promptTokens));
  t.match(one.id, /^msg_/);
  t.equal(one.type, 'message');
  t.equal(one.role, 'assistant');
  t.equal(one.model, 'tiny');
  t.strictSame(one.content, [{ type: 'text', text: cold1.text }]);
  t.equal(one.stop_reason, stopReason(cold1));
  t.equal(one.stop_sequence, null);
  t.strictSame(one.usage, { input_tokens: counted.input_tokens, output_tokens: cold1.tokens.length, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 });

  const second: Turn[] = [...first, { role: 'assistant', content: one.content[0]?.type === 'text' ? one.content[0].text : '' }, { role: 'user', content: 'And after Cusco?' }];
  const cold2 = await greedyReference(modelPath, asChat(second), MAX);
  const reuse = expectedReuse(cold1, cold2);
  t.ok(reuse >= cold1.promptTokens - 1, `reuses at least the first prompt (${reuse} tokens)`);
  const { data: two, response: response2 } = await client.messages.create({ ...params, messages: second }).withResponse();
  t.equal(response2.headers.get('x-semantic-cache'), 'hot');
  t.equal(two.usage.cache_read_input_tokens, reuse, 'cache_read_input_tokens = tokens actually reused');
  t.equal(two.usage.input_tokens, cold2.promptTokens - reuse, 'input_tokens = tokens computed');
  t.equal(response2.headers.get('x-semantic-prompt-tokens-computed'), String(cold2.promptTokens - reuse));
  const counted2 = await client.messages.countTokens({ model: 'tiny', system, messages: second });
  t.equal(two.usage.input_tokens + (two.usage.cache_read_input_tokens ?? 0), counted2.input_tokens, 'input + cache read = count_tokens');
  t.strictSame(two.content, [{ type: 'text', text: cold2.text }], 'warm output equals cold output');
});

t.test('streaming: the exact event sequence, text equal to the non-streaming text', async (t) => {
  const messages: Turn[] = [{ role: 'user', content: 'Stream me a plan.' }];
  const reference = await greedyReference(modelPath, asChat(messages), MAX);
  const body = { model: 'tiny', system, max_tokens: MAX, temperature: 0, messages, metadata: { user_id: 'anthropic-stream' } };
  const response = await client.messages.create({ ...body, stream: true }).asResponse();
  t.equal(response.status, 200);
  t.match(response.headers.get('content-type'), /^text\/event-stream/);
  const events: { event: string | null; data: { type: string } & Record<string, unknown> }[] = [];
  for await (const sse of Stream.rawEvents(response)) events.push({ event: sse.event, data: JSON.parse(sse.data) as { type: string } });
  t.ok(
    events.every((e) => e.event === e.data.type),
    'every event is named by its type',
  );
  const deltas = events.filter((e) => e.event === 'content_block_delta');
  t.strictSame(
    events.map((e) => e.event),
    ['message_start', 'content_block_start', 'ping', ...deltas.map(() => 'content_block_delta'), 'content_block_stop', 'message_delta', 'message_stop'],
  );
  t.ok(deltas.length > 0, 'text came in deltas');
  const start = events[0]?.data as unknown as Anthropic.RawMessageStartEvent;
  t.match(start.message, { type: 'message', role: 'assistant', model: 'tiny', content: [], stop_reason: null, stop_sequence: null });
  t.strictSame(start.message.usage, { input_tokens: reference.promptTokens, output_tokens: 0, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 });
  t.strictSame(events[1]?.data, { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } });
  const text = deltas
    .map((e) => (e.data as unknown as Anthropic.RawContentBlockDeltaEvent).delta)
    .map((d) => (d.type === 'text_delta' ? d.text : ''))
    .join('');
  t.equal(text, reference.text, 'streamed text equals the cold greedy reference');
  t.strictSame(events.at(-3)?.data, { type: 'content_block_stop', index: 0 });
  t.strictSame(events.at(-2)?.data, {
    type: 'message_delta',
    delta: { stop_reason: stopReason(reference), stop_sequence: null },
    usage: { input_tokens: reference.promptTokens, output_tokens: reference.tokens.length, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 },
  });

  // The SDK's own accumulation of the same (now warm) request agrees with the non-streaming answer.
  const nonStreaming = await client.messages.create({ ...body, metadata: { user_id: 'anthropic-stream-2' } });
  const final = await client.messages.stream({ ...body, metadata: { user_id: 'anthropic-stream-3' } }).finalMessage();
  t.strictSame(final.content, nonStreaming.content);
  t.equal(final.stop_reason, nonStreaming.stop_reason);
  t.equal(final.usage.output_tokens, nonStreaming.usage.output_tokens);
});

t.test('errors come in Anthropic shape as the SDK typed errors', async (t) => {
  const messages: Turn[] = [{ role: 'user', content: 'hi' }];
  const missing = await rejection(client.messages.create({ model: 'tiny', messages } as unknown as Anthropic.MessageCreateParamsNonStreaming));
  t.ok(missing instanceof BadRequestError, 'max_tokens missing: BadRequestError');
  t.equal(missing.status, 400);
  t.equal(missing.type, 'invalid_request_error');
  t.match(missing.error, { type: 'error', error: { type: 'invalid_request_error', message: /max_tokens/ } });

  const unknownModel = await rejection(client.messages.create({ model: 'claude-nope', max_tokens: 4, messages }));
  t.ok(unknownModel instanceof NotFoundError, 'unknown model: NotFoundError');
  t.equal(unknownModel.type, 'not_found_error');
  const streamed = await rejection(client.messages.create({ model: 'claude-nope', max_tokens: 4, messages, stream: true }));
  t.ok(streamed instanceof NotFoundError, 'a refusal before the stream starts keeps its status');

  const tools = [{ name: 'get_weather', input_schema: { type: 'object' as const } }];
  const unknownTool = await rejection(client.messages.create({ model: 'tiny', max_tokens: 4, messages, tools, tool_choice: { type: 'tool', name: 'get_time' } }));
  t.ok(unknownTool instanceof BadRequestError, 'tool_choice naming a tool the request lacks: BadRequestError');
  t.match(unknownTool.message, /tool_choice\.name: the tool 'get_time' is not among the request's tools/);

  const countUnknown = await rejection(client.messages.countTokens({ model: 'claude-nope', messages }));
  t.ok(countUnknown instanceof NotFoundError, 'count_tokens checks the model too');
});
