// Anthropic tool use end to end: the official SDK against the real `semantic serve` on the tiny model.
// A named tool_choice makes the sampler write a call (grammar), so the random model's output is
// deterministic: it must equal a cold single-sequence run with the same grammar, token for token, come
// back as exactly one tool_use block (JSON and stream alike), and the round trip's second turn must
// read exactly the cached prefix the first turn left.
import t from 'tap';
import Anthropic, { APIError, BadRequestError } from '@anthropic-ai/sdk';
import { Stream } from '@anthropic-ai/sdk/streaming';
import { loadAddon } from '../../worker/engine/addon.js';
import { ChatTemplate } from '../../worker/engine/chat-template.js';
import { chatMessages } from '../../worker/api/anthropic/content.js';
import { parseMessagesRequest, toolUse } from '../../worker/api/anthropic/schema.js';
import { outputBlocks } from '../../worker/api/anthropic/blocks.js';
import type { ChatMessage, ToolDefinition } from '../../shared/protocol/messages.js';
import { tinyModelPath } from '../helpers/model.js';
import { startServer } from '../helpers/server.js';

const modelPath = await tinyModelPath();
const server = await startServer(['serve', '--port', '0', '--model', modelPath, '--model-id', 'tiny', '--threads', '1', '--context-size', '4096', '--max-sequences', '4']);
t.teardown(() => server.stop());

const client = new Anthropic({ baseURL: server.url, apiKey: 'not-checked-here', maxRetries: 0 });
const MAX = 256;
const cities = ['Paris', 'Lima', 'Oslo'];
const weather: Anthropic.Tool = {
  name: 'get_weather',
  description: 'The weather in a city',
  input_schema: { type: 'object', properties: { city: { type: 'string', enum: cities } }, required: ['city'] },
};
const clock: Anthropic.Tool = { name: 'get_time', input_schema: { type: 'object', properties: {} } };
const tools = [weather, clock];
const system = 'You answer with tools.';
const ask: Anthropic.MessageParam = { role: 'user', content: 'What is the weather in Paris?' };
const forced = { model: 'tiny', system, max_tokens: MAX, temperature: 0, tools, tool_choice: { type: 'tool' as const, name: 'get_weather' } };

interface Reference {
  prompt: number[];
  tokens: number[];
  text: string;
  /** Generation ended at an end token: the last token was decoded too, so the cache holds all of them. */
  endedByEog: boolean;
}

/**
 * A cold single-sequence greedy run of exactly what the server is asked, computed here with the addon:
 * the chat mapped and the grammar built by the same functions the server uses.
 */
async function reference(body: Anthropic.MessageCreateParamsNonStreaming): Promise<Reference> {
  const request = parseMessagesRequest(body);
  const use = toolUse(request, 'hermes');
  const addon = loadAddon();
  const model = await addon.loadModel(modelPath);
  const info = model.info();
  const piece = (token: number): string => model.detokenize(Int32Array.of(token), { special: true });
  const messages: ChatMessage[] = chatMessages(request);
  const rendered = new ChatTemplate(info.chatTemplate, { bos: piece(info.bos), eos: piece(info.eos) }).render(messages, use.promptTools as ToolDefinition[]);
  const prompt = model.tokenize(rendered, { addSpecial: true, parseSpecial: true });
  const context = await addon.createContext(model, { nCtx: prompt.length + MAX + 16, nSeqMax: 1, nBatch: 4096, threads: 1 });
  const sampler = new addon.Sampler(model, { temperature: 0, ...(use.grammar === undefined ? {} : { grammar: use.grammar }) });
  const logits = new Uint8Array(prompt.length);
  logits[prompt.length - 1] = 1;
  const positions = Int32Array.from(prompt, (_, i) => i);
  let [next] = await context.decode({ tokens: prompt, positions, seqIds: new Int32Array(prompt.length), logits }, [{ index: prompt.length - 1, sampler }]);
  const tokens: number[] = [];
  while (tokens.length < MAX && !model.isEog(next as number)) {
    tokens.push(next as number);
    if (tokens.length === MAX) break;
    const batch = { tokens: Int32Array.of(next as number), positions: Int32Array.of(prompt.length + tokens.length - 1), seqIds: Int32Array.of(0), logits: Uint8Array.of(1) };
    [next] = await context.decode(batch, [{ index: 0, sampler }]);
  }
  const text = Buffer.concat(tokens.map((token) => model.tokenToPiece(token))).toString('utf8');
  const endedByEog = tokens.length < MAX;
  sampler.dispose();
  context.dispose();
  model.dispose();
  return { prompt: [...prompt], tokens, text, endedByEog };
}

/** The cached prefix the next turn reuses: what the first turn left in the KV cache, as far as the next prompt shares it. */
function expectedReuse(previous: Reference, next: Reference): number {
  const cached = [...previous.prompt, ...(previous.endedByEog ? previous.tokens : previous.tokens.slice(0, -1))];
  let k = 0;
  while (k < cached.length && k < next.prompt.length && cached[k] === next.prompt[k]) k++;
  return Math.min(k, next.prompt.length - 1);
}

/** Tool-use ids are random: compare content with them replaced. */
function withoutIds(content: readonly Anthropic.ContentBlock[] | readonly unknown[]): unknown[] {
  return content.map((block) => ((block as { type: string }).type === 'tool_use' ? { ...(block as object), id: 'toolu_x' } : block));
}

t.test('a named tool: exactly one tool_use block of that tool, input valid for its schema, stop_reason tool_use', async (t) => {
  const body = { ...forced, messages: [ask], metadata: { user_id: 'tools-json' } };
  const cold = await reference(body);
  t.ok(cold.endedByEog, 'the grammar ended the call with an end token');
  const { data: message, response } = await client.messages.create(body).withResponse();
  t.equal(response.headers.get('x-semantic-cache'), 'miss');
  t.equal(message.stop_reason, 'tool_use');
  t.equal(message.stop_sequence, null);
  t.equal(message.content.length, 1, 'one block');
  const [block] = message.content;
  t.equal(block?.type, 'tool_use');
  if (block?.type !== 'tool_use') return;
  t.match(block.id, /^toolu_[0-9a-f]{24}$/);
  t.equal(block.name, 'get_weather');
  t.strictSame(Object.keys(block.input as object), ['city'], "only the schema's property");
  t.ok(cities.includes((block.input as { city: string }).city), `city is one of the enum (${(block.input as { city: string }).city})`);
  t.strictSame(withoutIds(message.content), withoutIds(outputBlocks(cold.text, { format: 'hermes', maxCalls: Infinity })), "the cold greedy run's call");
  t.strictSame(message.usage, { input_tokens: cold.prompt.length, output_tokens: cold.tokens.length, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 });
});

t.test('streaming: tool_use block events with input_json_delta; finalMessage equals the JSON message', async (t) => {
  const body = { ...forced, messages: [ask], metadata: { user_id: 'tools-stream' } };
  const json = await client.messages.create({ ...body, metadata: { user_id: 'tools-stream-json' } });
  const response = await client.messages.create({ ...body, stream: true }).asResponse();
  t.equal(response.status, 200);
  const events: ({ type: string } & Record<string, unknown>)[] = [];
  for await (const sse of Stream.rawEvents(response)) {
    const data = JSON.parse(sse.data) as { type: string };
    t.equal(sse.event, data.type, 'named by its type');
    events.push(data);
  }
  const deltas = events.filter((e) => e.type === 'content_block_delta');
  t.strictSame(
    events.map((e) => e.type),
    ['message_start', 'content_block_start', 'ping', ...deltas.map(() => 'content_block_delta'), 'content_block_stop', 'message_delta', 'message_stop'],
    "the real API's sequence for one tool_use block",
  );
  const start = events[1] as unknown as Anthropic.RawContentBlockStartEvent;
  t.match(start, { index: 0, content_block: { type: 'tool_use', id: /^toolu_/, name: 'get_weather', input: {} } });
  t.strictSame((start.content_block as Anthropic.ToolUseBlock).input, {}, 'the input starts empty');
  t.ok(deltas.length > 0 && deltas.every((e) => e.index === 0 && (e.delta as { type: string }).type === 'input_json_delta'));
  const json1 = json.content[0] as Anthropic.ToolUseBlock;
  const partial = deltas.map((e) => (e.delta as Anthropic.InputJSONDelta).partial_json).join('');
  t.strictSame(JSON.parse(partial), json1.input, 'the input_json_delta pieces concatenate to the input');
  t.strictSame(events.at(-3), { type: 'content_block_stop', index: 0 });
  t.match(events.at(-2), {
    type: 'message_delta',
    delta: { stop_reason: 'tool_use', stop_sequence: null },
    usage: { output_tokens: json.usage.output_tokens, cache_creation_input_tokens: 0 },
  });

  const final = await client.messages.stream({ ...body, metadata: { user_id: 'tools-stream-sdk' } }).finalMessage();
  t.strictSame(withoutIds(final.content), withoutIds(json.content), "the SDK accumulates the stream into the JSON message's content");
  t.equal(final.stop_reason, 'tool_use');
  t.equal(final.usage.output_tokens, json.usage.output_tokens);
});

t.test("round trip: the call and its result sent back; the second turn reads the first turn's cache", async (t) => {
  const first = { ...forced, messages: [ask], metadata: { user_id: 'tools-round-trip' } };
  const cold1 = await reference(first);
  const one = await client.messages.create(first);
  const call = one.content.find((block): block is Anthropic.ToolUseBlock => block.type === 'tool_use');
  if (call === undefined) return t.fail('no tool_use block');
  const result: Anthropic.MessageParam = { role: 'user', content: [{ type: 'tool_result', tool_use_id: call.id, content: '18°C and sunny' }] };
  const second = { ...first, tool_choice: { type: 'auto' as const }, messages: [ask, { role: 'assistant' as const, content: one.content }, result] };
  const cold2 = await reference(second);
  const reuse = expectedReuse(cold1, cold2);
  t.ok(
    reuse >= cold1.prompt.length,
    `reuses at least the first prompt (${reuse} of ${cold2.prompt.length} tokens; first prompt ${cold1.prompt.length}, call ${cold1.tokens.length})`,
  );

  const { data: two, response } = await client.messages.create(second).withResponse();
  t.equal(response.headers.get('x-semantic-cache'), 'hot');
  t.equal(two.usage.cache_read_input_tokens, reuse, 'cache_read_input_tokens = the cached prefix');
  t.equal(two.usage.input_tokens, cold2.prompt.length - reuse, 'input_tokens = the tokens computed');
  t.equal(two.usage.output_tokens, cold2.tokens.length);
  t.strictSame(withoutIds(two.content), withoutIds(outputBlocks(cold2.text, { format: 'hermes', maxCalls: Infinity })), 'the cold greedy answer');
  const counted = await client.messages.countTokens({ model: 'tiny', system, tools, tool_choice: { type: 'auto' }, messages: second.messages });
  t.equal(counted.input_tokens, cold2.prompt.length, 'count_tokens renders the tool call and result as generation does');
});

t.test('count_tokens counts the tools the prompt carries', async (t) => {
  const withTools = await client.messages.countTokens({ model: 'tiny', system, tools, messages: [ask] });
  const without = await client.messages.countTokens({ model: 'tiny', system, messages: [ask] });
  const hidden = await client.messages.countTokens({ model: 'tiny', system, tools, tool_choice: { type: 'none' }, messages: [ask] });
  t.equal(withTools.input_tokens, (await reference({ ...forced, messages: [ask] })).prompt.length, 'the prompt generation would compute');
  t.ok(withTools.input_tokens > without.input_tokens, `${withTools.input_tokens} > ${without.input_tokens}`);
  t.equal(hidden.input_tokens, without.input_tokens, 'tool_choice none: the model is told of no tools');
});

t.test('tool errors come as the SDK typed errors', async (t) => {
  const refused = async (body: unknown): Promise<APIError> => {
    try {
      await client.messages.create(body as Anthropic.MessageCreateParamsNonStreaming);
    } catch (error) {
      if (error instanceof APIError) return error;
      throw error;
    }
    throw new Error('expected a 400');
  };
  const unanswered = await refused({
    ...forced,
    messages: [ask, { role: 'assistant', content: [{ type: 'tool_use', id: 'toolu_1', name: 'get_weather', input: { city: 'Lima' } }] }, ask],
  });
  t.ok(unanswered instanceof BadRequestError);
  t.match(unanswered.error, { type: 'error', error: { type: 'invalid_request_error', message: /^messages\.2: tool_use ids were found without tool_result blocks/ } });
  const server = await refused({ ...forced, tools: [{ type: 'bash_20250124', name: 'bash' }], tool_choice: undefined, messages: [ask] });
  t.match(server.error, { error: { message: /^tools\.0\.type: server tools/ } });
});
