// The Anthropic Messages routes end to end with the official SDK against the real `semantic serve`
// process: greedy output equals a cold single-sequence run, usage agrees with count_tokens, the
// stream's events come exactly as the real API sends them, a second turn of the same
// metadata.user_id reads the agent's cache, and errors arrive as the SDK's typed errors. Then what
// agent clients send beyond the basics (issue 15): thinking, cache_control with its usage, the beta
// surface with its headers, Claude Code's captured request as it is, and model aliases on every family.
import { readFileSync } from 'node:fs';
import t from 'tap';
import Anthropic, { APIError, BadRequestError, NotFoundError } from '@anthropic-ai/sdk';
import { Stream } from '@anthropic-ai/sdk/streaming';
import { greedyReference, type GreedyReference } from '../helpers/greedy.js';
import { tinyModelPath } from '../helpers/model.js';
import { startServer } from '../helpers/server.js';
import type { ChatMessage } from '../../shared/protocol/messages.js';

const modelPath = await tinyModelPath();
const aliases = ['--model-alias', 'claude-sonnet-4-5', '--model-alias', 'claude-haiku-4-5,claude-opus-4-1'];
const server = await startServer([
  'serve',
  '--port',
  '0',
  '--model',
  modelPath,
  '--model-id',
  'tiny',
  '--threads',
  '1',
  '--context-size',
  '2560',
  '--max-sequences',
  '4',
  ...aliases,
]);
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

/** The SDK's 1.12 types have no temperature (the API still takes it): passed through a variable. */
const greedy: object = { temperature: 0 };

/**
 * One cold turn with the tiny model (which does not reason), by its greedy reference. Its own system
 * text keeps it cold: agents share cached prefixes (prefixSharing), and the others' start with `system`.
 */
async function coldTurn(systemText: string, user: string): Promise<{ system: string; messages: Turn[]; reference: GreedyReference }> {
  const messages: Turn[] = [{ role: 'user', content: user }];
  const chat: ChatMessage[] = [{ role: 'system', content: systemText }, ...messages];
  return { system: systemText, messages, reference: await greedyReference(modelPath, chat, MAX) };
}

t.test('thinking adaptive, disabled and enabled: 200 and only a text block from a model that does not reason', async (t) => {
  for (const thinking of [{ type: 'adaptive' as const }, { type: 'disabled' as const }]) {
    const { system, messages, reference } = await coldTurn(`Mind ${thinking.type} thinks about trips.`, 'Think about Lima.');
    const message = await client.messages.create({ model: 'tiny', system, max_tokens: MAX, ...greedy, messages, thinking, metadata: { user_id: `thinking-${thinking.type}` } });
    t.strictSame(message.content, [{ type: 'text', text: reference.text }], `${thinking.type}: the text a request without thinking gets`);
    t.strictSame(message.usage, { input_tokens: reference.promptTokens, output_tokens: reference.tokens.length, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 });
  }
  // enabled needs max_tokens above a budget of at least 1024, as the real API checks
  const { system, messages, reference } = await coldTurn('Mind enabled thinks about trips.', 'Think about Lima.');
  const thinking = { type: 'enabled' as const, budget_tokens: 1024 };
  const enabled = await client.messages.create({ model: 'tiny', system, max_tokens: 1025, ...greedy, messages, thinking, metadata: { user_id: 'thinking-enabled' } });
  t.strictSame(
    enabled.content.map((block) => block.type),
    ['text'],
  );
  t.ok(enabled.content[0]?.type === 'text' && enabled.content[0].text.startsWith(reference.text), 'greedy: it starts with the 12-token answer');
  t.equal(enabled.usage.input_tokens, reference.promptTokens);
  const tooBig = await rejection(client.messages.create({ model: 'tiny', max_tokens: 1024, messages, thinking }));
  t.ok(tooBig instanceof BadRequestError);
  t.match(tooBig.message, /max_tokens: `max_tokens` must be greater than `thinking.budget_tokens`/);
});

t.test('cache_control on system, message and tool blocks: the computed prompt is reported as a cache write, the next turn as a read', async (t) => {
  const { system, messages: first, reference: cold1 } = await coldTurn('Marks plans trips.', 'Plan a trip to Quito.');
  const chat = (turns: Turn[]): ChatMessage[] => [{ role: 'system', content: system }, ...turns];
  const mark = { type: 'ephemeral' as const };
  const marked = (turns: Turn[]): Anthropic.MessageParam[] =>
    turns.map((turn, i) => (i < turns.length - 1 ? turn : { role: turn.role, content: [{ type: 'text', text: turn.content, cache_control: mark }] }));
  const params = {
    model: 'tiny',
    system: [{ type: 'text' as const, text: system, cache_control: { ...mark, ttl: '1h' as const } }],
    max_tokens: MAX,
    ...greedy,
    metadata: { user_id: 'cache-control' },
  };
  const one = await client.messages.create({ ...params, messages: marked(first) });
  t.strictSame(one.content, [{ type: 'text', text: cold1.text }], 'cache_control changes no output');
  t.strictSame(one.usage, { input_tokens: 0, output_tokens: cold1.tokens.length, cache_creation_input_tokens: cold1.promptTokens, cache_read_input_tokens: 0 });

  const second: Turn[] = [...first, { role: 'assistant', content: cold1.text }, { role: 'user', content: 'And then?' }];
  const cold2 = await greedyReference(modelPath, chat(second), MAX);
  const reuse = expectedReuse(cold1, cold2);
  const two = await client.messages.create({ ...params, messages: marked(second) });
  t.strictSame(two.content, [{ type: 'text', text: cold2.text }], 'warm output equals cold output');
  t.strictSame(two.usage, { input_tokens: 0, output_tokens: cold2.tokens.length, cache_creation_input_tokens: cold2.promptTokens - reuse, cache_read_input_tokens: reuse });

  const tools = [
    { name: 'get_weather', description: 'Weather of a city', input_schema: { type: 'object' as const, properties: { city: { type: 'string' } } }, cache_control: mark },
  ];
  const toolSystem = 'Tools plan trips.';
  const withTool = await client.messages.create({ model: 'tiny', system: toolSystem, max_tokens: MAX, metadata: { user_id: 'cache-control-tool' }, messages: first, tools });
  const counted = await client.messages.countTokens({ model: 'tiny', system: toolSystem, messages: first, tools });
  t.strictSame(
    withTool.usage,
    { input_tokens: 0, output_tokens: withTool.usage.output_tokens, cache_creation_input_tokens: counted.input_tokens, cache_read_input_tokens: 0 },
    'a marked tool alone asks for caching; the whole prompt is the write',
  );
});

t.test('the beta surface: beta headers and fields through client.beta.messages.create, answered under the alias asked for', async (t) => {
  const { system, messages, reference } = await coldTurn('Betas plan trips.', 'Beta trip to Cusco.');
  const message = await client.beta.messages.create({
    model: 'claude-sonnet-4-5',
    betas: ['claude-code-20250219', 'interleaved-thinking-2025-05-14', 'context-management-2025-06-27', 'advanced-tool-use-2025-11-20'],
    system,
    max_tokens: MAX,
    ...greedy,
    messages,
    thinking: { type: 'adaptive', display: 'omitted' },
    context_management: { edits: [{ type: 'clear_thinking_20251015', keep: 'all' }] },
    container: 'container_1',
    metadata: { user_id: JSON.stringify({ device_id: 'd', account_uuid: '', session_id: 's' }) },
    service_tier: 'standard_only',
  });
  t.equal(message.model, 'claude-sonnet-4-5');
  t.strictSame(message.content, [{ type: 'text', text: reference.text }]);
  t.strictSame(message.usage, { input_tokens: reference.promptTokens, output_tokens: reference.tokens.length, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 });
  const mcp = await rejection(client.beta.messages.create({ model: 'tiny', max_tokens: 4, messages, mcp_servers: [{ type: 'url', name: 'x', url: 'http://127.0.0.1:1/mcp' }] }));
  t.ok(mcp instanceof BadRequestError, 'MCP servers run on the API side: refused');
  t.match(mcp.error, { error: { type: 'invalid_request_error', message: /^mcp_servers: MCP servers are not supported/ } });
});

t.test("Claude Code's captured request, POSTed as it is: 200, and its max_tokens 32000 capped at the context's room", async (t) => {
  const body = JSON.parse(readFileSync(new URL('../fixtures/claude-code-messages-request.json', import.meta.url), 'utf8')) as Record<string, unknown>;
  const headers = {
    'content-type': 'application/json',
    'anthropic-version': '2023-06-01',
    'anthropic-beta': 'claude-code-20250219,context-management-2025-06-27',
    'x-api-key': 'dummy',
  };
  const response = await fetch(`${server.url}/v1/messages?beta=true`, { method: 'POST', headers, body: JSON.stringify(body) });
  t.equal(response.status, 200);
  const events = (await response.text())
    .split('\n')
    .filter((line) => line.startsWith('data: '))
    .map((line) => JSON.parse(line.slice(6)) as { type: string; message?: Anthropic.Message; delta?: { stop_reason: string }; usage?: Anthropic.MessageDeltaUsage });
  t.equal(events[0]?.type, 'message_start');
  t.equal(events.at(-1)?.type, 'message_stop');
  const { model, messages, system: sys, tools, thinking } = body as unknown as Anthropic.MessageCountTokensParams;
  const counted = await client.messages.countTokens({ model, messages, system: sys, tools, thinking });
  const start = events[0]?.message?.usage;
  t.equal((start?.cache_creation_input_tokens ?? 0) + (start?.cache_read_input_tokens ?? 0), counted.input_tokens, 'the whole prompt, as a cache write (it marks cache_control)');
  const end = events.at(-2);
  t.equal(end?.type, 'message_delta');
  const room = 2560 - counted.input_tokens;
  if (end?.delta?.stop_reason === 'max_tokens') t.equal(end.usage?.output_tokens, room, 'cut where the context is full');
  else t.ok((end?.usage?.output_tokens ?? Infinity) <= room);
});

t.test('model aliases: listed in /v1/models and answered to by every family', async (t) => {
  const models = (await (await fetch(`${server.url}/v1/models`)).json()) as { data: { id: string }[] };
  t.strictSame(
    models.data.map((m) => m.id),
    ['tiny', 'claude-sonnet-4-5', 'claude-haiku-4-5', 'claude-opus-4-1'],
  );
  const messages: Turn[] = [{ role: 'user', content: 'hi' }];
  const haiku = await client.messages.create({ model: 'claude-haiku-4-5', max_tokens: 2, messages });
  t.equal(haiku.model, 'claude-haiku-4-5');
  t.equal((await client.messages.countTokens({ model: 'claude-opus-4-1', messages })).input_tokens, (await client.messages.countTokens({ model: 'tiny', messages })).input_tokens);
  const chat = await fetch(`${server.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'claude-sonnet-4-5', max_tokens: 2, messages }),
  });
  t.equal(chat.status, 200, 'the OpenAI family answers to an alias too');
  const completion = await fetch(`${server.url}/v1/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'claude-haiku-4-5', max_tokens: 2, prompt: 'hi' }),
  });
  t.equal(completion.status, 200);
  const unknown = await rejection(client.messages.create({ model: 'claude-sonnet-4-6', max_tokens: 2, messages }));
  t.ok(unknown instanceof NotFoundError, 'a name neither id nor alias is still a 404');
});
