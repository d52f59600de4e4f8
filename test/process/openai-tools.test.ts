// Tool calls and structured output through the official `openai` client against a real server on the
// tiny random model. A forced call (tool_choice named, enum-constrained arguments) makes the output
// deterministic: its name and arguments are exact, the stream assembles to the same call, the call and
// its result sent back reuse the agent's cache to the token, and JSON modes give JSON.
import t from 'tap';
import OpenAI from 'openai';
import { loadAddon } from '../../worker/engine/addon.js';
import { ChatTemplate } from '../../worker/engine/chat-template.js';
import { toolChoiceGrammar } from '../../worker/tools/tool-choice.js';
import type { ChatMessage, ToolDefinition } from '../../shared/protocol/messages.js';
import { tinyModelPath } from '../helpers/model.js';
import { startServer } from '../helpers/server.js';

const modelPath = await tinyModelPath();
const server = await startServer(['serve', '--port', '0', '--model', modelPath, '--model-id', 'tiny', '--threads', '1', '--context-size', '4096']);
t.teardown(() => server.stop());
const client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused-locally', maxRetries: 0 });

const units = ['celsius', 'fahrenheit'];
const weather: ToolDefinition = {
  name: 'get_weather',
  description: 'The weather now',
  parameters: { type: 'object', properties: { unit: { type: 'string', enum: units } }, required: ['unit'], additionalProperties: false },
};
const tools: OpenAI.ChatCompletionTool[] = [{ type: 'function', function: { name: weather.name, description: weather.description ?? '', parameters: weather.parameters ?? {} } }];
const question: OpenAI.ChatCompletionMessageParam[] = [{ role: 'user', content: 'What is the weather?' }];
const forced = { model: 'tiny', messages: question, tools, tool_choice: { type: 'function' as const, function: { name: 'get_weather' } }, temperature: 0, max_tokens: 300 };

/**
 * The tokens the agent's cache holds after a forced call, computed with the addon as the engine runs
 * it: the templated prompt, then greedy tokens under the same grammar until the end token (every
 * generated token was decoded, the end token was not).
 */
async function cachedAfterForcedCall(messages: ChatMessage[]): Promise<{ cached: number[]; tokenize: (messages: ChatMessage[]) => number[] }> {
  const addon = loadAddon();
  const model = await addon.loadModel(modelPath);
  const info = model.info();
  const piece = (token: number): string => model.detokenize(Int32Array.of(token), { special: true });
  const template = new ChatTemplate(info.chatTemplate, { bos: piece(info.bos), eos: piece(info.eos) });
  const tokenize = (chat: ChatMessage[]): number[] => [...model.tokenize(template.render(chat, [weather]), { addSpecial: true, parseSpecial: true })];
  const prompt = Int32Array.from(tokenize(messages));
  const context = await addon.createContext(model, { nCtx: prompt.length + 320, nSeqMax: 1, nBatch: 512, threads: 1 });
  const sampler = new addon.Sampler(model, { temperature: 0, grammar: toolChoiceGrammar('hermes', [weather], { kind: 'tool', name: 'get_weather' }) });
  const logits = new Uint8Array(prompt.length);
  logits[prompt.length - 1] = 1;
  let [next] = await context.decode({ tokens: prompt, positions: Int32Array.from(prompt, (_, i) => i), seqIds: new Int32Array(prompt.length), logits }, [
    { index: prompt.length - 1, sampler },
  ]);
  const tokens: number[] = [];
  while (tokens.length < 300 && !model.isEog(next as number)) {
    tokens.push(next as number);
    const batch = { tokens: Int32Array.of(next as number), positions: Int32Array.of(prompt.length + tokens.length - 1), seqIds: Int32Array.of(0), logits: Uint8Array.of(1) };
    [next] = await context.decode(batch, [{ index: 0, sampler }]);
  }
  sampler.dispose();
  context.dispose();
  return { cached: [...prompt, ...tokens], tokenize };
}

const commonPrefix = (a: number[], b: number[]): number => {
  let k = 0;
  while (k < a.length && k < b.length && a[k] === b[k]) k++;
  return k;
};

let firstCall: OpenAI.ChatCompletionMessageToolCall | undefined;

t.test('a named tool_choice gets exactly that call, its arguments valid for the schema', async (t) => {
  const completion = await client.chat.completions.create({ ...forced, user: 'tools-agent' });
  const choice = completion.choices[0];
  t.equal(choice?.finish_reason, 'tool_calls');
  t.equal(choice?.message.content, null, 'no text besides the call');
  t.equal(choice?.message.tool_calls?.length, 1);
  firstCall = choice?.message.tool_calls?.[0];
  t.match(firstCall, { id: /^call_[0-9a-f]{24}$/, type: 'function', function: { name: 'get_weather' } });
  const args = JSON.parse(firstCall?.type === 'function' ? firstCall.function.arguments : '{}') as { unit?: string };
  t.same(Object.keys(args), ['unit']);
  t.ok(units.includes(args.unit ?? ''), `unit ${args.unit} is one of the enum`);
});

t.test('the same request streamed assembles to the same call', async (t) => {
  const stream = await client.chat.completions.create({ ...forced, stream: true, user: 'tools-stream' });
  const calls: { index: number; id?: string; name?: string; arguments: string }[] = [];
  let finish: string | null = null;
  let content = '';
  for await (const chunk of stream) {
    const choice = chunk.choices[0];
    content += choice?.delta.content ?? '';
    finish = choice?.finish_reason ?? finish;
    for (const delta of choice?.delta.tool_calls ?? []) {
      const call = (calls[delta.index] ??= { index: delta.index, arguments: '' });
      call.id ??= delta.id;
      call.name ??= delta.function?.name;
      call.arguments += delta.function?.arguments ?? '';
    }
  }
  t.equal(content, '');
  t.equal(finish, 'tool_calls');
  t.equal(calls.length, 1);
  t.match(calls[0]?.id, /^call_[0-9a-f]{24}$/);
  const expected = firstCall?.type === 'function' ? firstCall.function : undefined;
  t.same({ name: calls[0]?.name, arguments: calls[0]?.arguments }, { name: expected?.name, arguments: expected?.arguments });
});

t.test('the call and its result sent back: an answer, reusing the cached turn to the token', async (t) => {
  if (firstCall?.type !== 'function') return t.fail('no call from the first test');
  const result = '{"temperature": 21}';
  const messages: OpenAI.ChatCompletionMessageParam[] = [
    ...question,
    { role: 'assistant', content: null, tool_calls: [firstCall] },
    { role: 'tool', tool_call_id: firstCall.id, content: result },
  ];
  const reference = await cachedAfterForcedCall([{ role: 'user', content: 'What is the weather?' }]);
  const next = reference.tokenize([
    { role: 'user', content: 'What is the weather?' },
    { role: 'assistant', content: '', toolCalls: [{ id: firstCall.id, name: firstCall.function.name, arguments: firstCall.function.arguments }] },
    { role: 'tool', content: result, toolCallId: firstCall.id, name: firstCall.function.name },
  ]);
  const answer = await client.chat.completions.create({ model: 'tiny', messages, tools, temperature: 0, max_tokens: 8, user: 'tools-agent' }).withResponse();
  t.equal(answer.response.status, 200);
  t.equal(answer.response.headers.get('x-semantic-cache'), 'hot');
  t.equal(answer.data.usage?.prompt_tokens, next.length);
  t.equal(answer.data.usage?.prompt_tokens_details?.cached_tokens, Math.min(commonPrefix(reference.cached, next), next.length - 1), 'exactly the common prefix');
  t.ok((answer.data.usage?.prompt_tokens_details?.cached_tokens ?? 0) > reference.cached.length / 2, 'most of the first turn is reused');
  t.ok(answer.data.choices[0]?.finish_reason === 'stop' || answer.data.choices[0]?.finish_reason === 'length');
});

t.test('response_format json_object gives a JSON object', async (t) => {
  const completion = await client.chat.completions.create({ model: 'tiny', messages: question, response_format: { type: 'json_object' }, temperature: 0, max_tokens: 400 });
  t.equal(completion.choices[0]?.finish_reason, 'stop', 'the grammar completed');
  const value: unknown = JSON.parse(completion.choices[0]?.message.content ?? '');
  t.ok(typeof value === 'object' && value !== null && !Array.isArray(value), 'an object');
});

t.test('response_format json_schema holds the value to the schema', async (t) => {
  const colors = ['red', 'green', 'blue'];
  const completion = await client.chat.completions.create({
    model: 'tiny',
    messages: question,
    response_format: {
      type: 'json_schema',
      json_schema: {
        name: 'color',
        strict: true,
        schema: { type: 'object', properties: { color: { type: 'string', enum: colors } }, required: ['color'], additionalProperties: false },
      },
    },
    temperature: 0,
    max_tokens: 200,
  });
  t.equal(completion.choices[0]?.finish_reason, 'stop');
  const value = JSON.parse(completion.choices[0]?.message.content ?? '') as { color?: string };
  t.same(Object.keys(value), ['color']);
  t.ok(colors.includes(value.color ?? ''), `${value.color} is one of the enum`);
});

t.test('tool_choice none: the model is told of no tools and its output is all text', async (t) => {
  const completion = await client.chat.completions.create({ model: 'tiny', messages: question, tools, tool_choice: 'none', temperature: 0, max_tokens: 6 });
  t.equal(completion.choices[0]?.message.tool_calls, undefined);
  t.equal(typeof completion.choices[0]?.message.content, 'string');
});
