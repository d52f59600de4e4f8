// The Responses API through the official `openai` client, unchanged but for its base URL, against a
// real server on the tiny model: text (create and the `responses.stream()` helper, greedy output equal
// to a cold run), a function tool round trip, a JSON schema format, and a `previous_response_id` chain
// whose turns come from the chain's agent cache (exact cached counts, output equal to cold), also
// after a restart on the same cache dir; then GET, DELETE (the chain's last takes the agent's cache)
// and errors as the SDK's typed exceptions. Prefix sharing is off so every cached count is the agent's own.
import t from 'tap';
import OpenAI from 'openai';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChatMessage } from '../../shared/protocol/messages.js';
import { cachedAfter, expectedReuse, greedyReference, type GreedyReference } from '../helpers/greedy.js';
import { tinyModelPath } from '../helpers/model.js';
import { startServer, type RunningServer } from '../helpers/server.js';

const modelPath = await tinyModelPath();
const MAX = 8;
const cacheDir = mkdtempSync(join(tmpdir(), 'semantic-responses-'));

async function serve(): Promise<{ server: RunningServer; client: OpenAI }> {
  const args = ['serve', '--port', '0', '--model', modelPath, '--model-id', 'tiny', '--threads', '1', '--context-size', '4096', '--cache-dir', cacheDir];
  const server = await startServer([...args, '--prefix-sharing', 'off']);
  t.teardown(() => server.stop());
  return { server, client: new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused-locally', maxRetries: 0 }) };
}

let { server, client } = await serve();
const instructions = 'You are terse.';
const failure = (call: Promise<unknown>): Promise<unknown> =>
  call.then(
    () => 'resolved',
    (error: unknown) => error,
  );
const statusOf = (cold: GreedyReference): string => (cold.tokens.length === MAX ? 'incomplete' : 'completed');

t.test('text: create and the stream helper give the greedy text of a cold run', async (t) => {
  const cold = await greedyReference(
    modelPath,
    [
      { role: 'system', content: instructions },
      { role: 'user', content: 'Name a colour.' },
    ],
    MAX,
  );
  const params = { model: 'tiny', instructions, input: 'Name a colour.', max_output_tokens: MAX, temperature: 0, store: false };
  const response = await client.responses.create({ ...params, user: 'responses-json' });
  t.equal(response.object, 'response');
  t.match(response.id, /^resp_[0-9a-f]{48}$/);
  t.equal(response.status, statusOf(cold));
  t.equal(response.output_text, cold.text, 'output_text (computed by the SDK) is the cold text');
  t.same(response.usage, {
    input_tokens: cold.promptTokens,
    input_tokens_details: { cached_tokens: 0 },
    output_tokens: cold.tokens.length,
    output_tokens_details: { reasoning_tokens: 0 },
    total_tokens: cold.promptTokens + cold.tokens.length,
  });

  const stream = client.responses.stream({ ...params, user: 'responses-stream' });
  const types: string[] = [];
  const sequence: number[] = [];
  let deltas = '';
  let last: OpenAI.Responses.ResponseStreamEvent | undefined;
  for await (const event of stream) {
    if (types.at(-1) !== event.type) types.push(event.type);
    sequence.push(event.sequence_number);
    if (event.type === 'response.output_text.delta') deltas += event.delta;
    last = event;
  }
  const final = await stream.finalResponse();
  const end = statusOf(cold) === 'incomplete' ? 'response.incomplete' : 'response.completed';
  t.same(types, [
    'response.created',
    'response.in_progress',
    'response.output_item.added',
    'response.content_part.added',
    'response.output_text.delta',
    'response.output_text.done',
    'response.content_part.done',
    'response.output_item.done',
    end,
  ]);
  t.same(
    sequence,
    sequence.map((_, i) => i),
    'sequence numbers count from 0',
  );
  t.equal(deltas, cold.text);
  // The SDK computes output_text only from a `response.completed` event's response: read the items.
  const assembled = final.output.flatMap((item) => (item.type === 'message' ? item.content : [])).map((part) => (part.type === 'output_text' ? part.text : ''));
  t.equal(assembled.join(''), cold.text, 'finalResponse() assembles the same text');
  t.match(last, { type: end, response: { status: statusOf(cold), usage: { input_tokens: cold.promptTokens, output_tokens: cold.tokens.length } } });
});

const units = ['celsius', 'fahrenheit'];
const weatherTool: OpenAI.Responses.FunctionTool = {
  type: 'function',
  name: 'get_weather',
  description: 'The weather now',
  strict: true,
  parameters: { type: 'object', properties: { unit: { type: 'string', enum: units } }, required: ['unit'], additionalProperties: false },
};

t.test('a function tool round trip: a forced call streamed, its output sent back on the chain', async (t) => {
  const stream = client.responses.stream({ model: 'tiny', input: 'What is the weather?', tools: [weatherTool], tool_choice: 'required', temperature: 0, max_output_tokens: 300 });
  const types = new Set<string>();
  for await (const event of stream) types.add(event.type);
  const first = await stream.finalResponse();
  t.ok(types.has('response.function_call_arguments.delta') && types.has('response.function_call_arguments.done'), 'the arguments stream');
  t.equal(first.status, 'completed');
  t.equal(first.output.length, 1, 'only the call');
  const call = first.output[0];
  if (call?.type !== 'function_call') return t.fail(`expected a function_call item, got ${call?.type}`);
  t.equal(call.name, 'get_weather');
  t.match(call.call_id, /^call_/);
  t.ok(units.includes((JSON.parse(call.arguments) as { unit: string }).unit), 'arguments held to the schema');

  const input: OpenAI.Responses.ResponseInputItem[] = [{ type: 'function_call_output', call_id: call.call_id, output: '{"temperature": 21}' }];
  // The same tools in the prompt (tool_choice `none` would leave them out, and the prompt would differ from its start).
  const second = await client.responses.create({
    model: 'tiny',
    previous_response_id: first.id,
    input,
    tools: [weatherTool],
    tool_choice: 'auto',
    temperature: 0,
    max_output_tokens: MAX,
  });
  t.equal(second.output[0]?.type, 'message', 'the answer is text');
  // At least the whole first prompt: the forced call's tokens (sampled under a grammar) need not be the ones its text tokenizes to.
  t.ok((second.usage?.input_tokens_details.cached_tokens ?? 0) >= (first.usage?.input_tokens ?? Infinity), "the call's turn came from the agent's cache");
  const counted = await client.responses.inputTokens.count({ model: 'tiny', previous_response_id: first.id, input, tools: [weatherTool], tool_choice: 'auto' });
  t.equal(counted.input_tokens, second.usage?.input_tokens, 'input_tokens counts the prompt the turn had');
});

t.test('a JSON schema format holds the output to the schema', async (t) => {
  const colours = ['red', 'green', 'blue'];
  const schema = { type: 'object', properties: { colour: { type: 'string', enum: colours } }, required: ['colour'], additionalProperties: false };
  const response = await client.responses.create({
    model: 'tiny',
    input: 'Name a colour.',
    text: { format: { type: 'json_schema', name: 'colour', schema, strict: true } },
    temperature: 0,
    max_output_tokens: 400,
  });
  t.equal(response.status, 'completed', 'the grammar completed');
  t.ok(colours.includes((JSON.parse(response.output_text) as { colour: string }).colour));
});

t.test('a previous_response_id chain is its agent: exact cached tokens, cold output, across a restart', async (t) => {
  const said = ['Name a colour.', 'Another one.', 'And a third.'];
  const colds: GreedyReference[] = [];
  const conversation: ChatMessage[] = [{ role: 'system', content: instructions }];
  for (const text of said) {
    conversation.push({ role: 'user', content: text });
    const cold = await greedyReference(modelPath, conversation, MAX);
    colds.push(cold);
    conversation.push({ role: 'assistant', content: cold.text });
  }
  const turn = (input: string, previous: string | undefined) =>
    client.responses.create({ model: 'tiny', instructions, input, previous_response_id: previous ?? null, max_output_tokens: MAX, temperature: 0 });
  const expected = (i: number): number => (i === 0 ? 0 : expectedReuse(cachedAfter(colds[i - 1] as GreedyReference), colds[i] as GreedyReference));

  const first = await turn(said[0] as string, undefined);
  const second = await turn(said[1] as string, first.id);
  for (const [i, response] of [first, second].entries()) {
    t.equal(response.output_text, colds[i]?.text, `turn ${i + 1}: the cold output`);
    t.equal(response.usage?.input_tokens, colds[i]?.promptTokens, `turn ${i + 1}: the whole conversation is its input`);
    t.equal(response.usage?.input_tokens_details.cached_tokens, expected(i), `turn ${i + 1}: only the new input computed`);
  }
  t.ok(expected(1) > (colds[0]?.promptTokens ?? Infinity), 'the previous turn (prompt and output) came from the cache');

  // The record is written behind the answer: a restart finds it once its file is there.
  for (let i = 0; i < 200 && !existsSync(join(cacheDir, 'responses', `${second.id}.json`)); i++) await new Promise((resolve) => setTimeout(resolve, 25));
  t.equal(await server.stop(), 0, 'a clean stop writes the agent cache');
  ({ server, client } = await serve());

  const third = await turn(said[2] as string, second.id);
  t.equal(third.output_text, colds[2]?.text, 'turn 3 after a restart: the cold output');
  t.equal(third.usage?.input_tokens_details.cached_tokens, expected(2), "turn 3 after a restart: from the agent's file, only the new input computed");
  t.equal((await client.responses.retrieve(first.id)).output_text, first.output_text, 'stored responses survive the restart');

  await client.responses.delete(third.id);
  await client.responses.delete(second.id);
  t.equal((await fetch(`${server.url}/v1/agents/${first.id}`)).status, 200, 'the agent stays while a response of its chain is stored');
  await client.responses.delete(first.id);
  t.equal((await fetch(`${server.url}/v1/agents/${first.id}`)).status, 404, "deleting the chain's last response forgets its agent");
  t.match(await failure(client.responses.retrieve(first.id)), { status: 404, error: { code: 'ERR_RESPONSE_NOT_FOUND', param: 'response_id' } });
  t.notOk(existsSync(join(cacheDir, 'responses', `${first.id}.json`)), 'its file is gone');
});

t.test('errors arrive as the SDK typed exceptions, in OpenAI shape', async (t) => {
  const missing = await failure(client.responses.create({ model: 'tiny', input: 'Hi', previous_response_id: 'resp_0123' }));
  t.ok(missing instanceof OpenAI.NotFoundError);
  t.match(missing, { status: 404, error: { code: 'ERR_RESPONSE_NOT_FOUND', param: 'previous_response_id', type: 'invalid_request_error' } });
  t.match(await failure(client.responses.create({ model: 'other', input: 'Hi' })), { status: 404, error: { code: 'ERR_MODEL_NOT_FOUND', param: 'model' } });
  const hosted = await failure(client.responses.create({ model: 'tiny', input: 'Hi', tools: [{ type: 'web_search' }] }));
  t.ok(hosted instanceof OpenAI.BadRequestError);
  t.match(hosted, { status: 400, error: { param: 'tools.0.type' } });
  const image = [{ role: 'user' as const, content: [{ type: 'input_image' as const, image_url: 'data:,', detail: 'auto' as const }] }];
  t.match(await failure(client.responses.create({ model: 'tiny', input: image })), { status: 400, error: { param: 'input.0.content.0' } });
  t.match(await failure(client.responses.create({ model: 'tiny' })), { status: 400, error: { param: 'input' } });
  const forcedJson = { model: 'tiny', input: 'Hi', tools: [weatherTool], tool_choice: 'required' as const, text: { format: { type: 'json_object' as const } } };
  t.match(await failure(client.responses.create(forcedJson)), { status: 400, error: { param: 'text.format' } });
});
