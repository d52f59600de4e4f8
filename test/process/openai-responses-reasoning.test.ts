// Reasoning on the Responses API through the official `openai` client, unchanged, against a real server
// on the tiny model with a Qwen3-style template whose prompt opens `<think>` (make-model --reasoning):
// `reasoning.effort` minimal bounds the think block (the engine writes the close itself) and the block
// is a `reasoning` item before the message, in JSON and in the stream (exact event sequence, deltas
// adding up to the item, the SDK's assembled response equal to the JSON one); `none` is all answer; a
// `previous_response_id` chain reuses exactly the tokens before each old think block, which the
// template drops from history, with the output of a cold run; reasoning sent back inside a tool loop
// is rendered; and a model that does not reason ignores the effort. Prefix sharing is off so every
// cached count is the chain's own.
import t from 'tap';
import OpenAI from 'openai';
import type { ChatMessage } from '../../shared/protocol/messages.js';
import { effortBudgets } from '../../worker/api/reasoning-effort.js';
import { loadAddon } from '../../worker/engine/addon.js';
import { ChatTemplate } from '../../worker/engine/chat-template.js';
import { splitReasoning } from '../../worker/tools/reasoning.js';
import { cachedAfter, expectedReuse, greedyReference, type GreedyReference } from '../helpers/greedy.js';
import { tinyModelPath, tinyReasoningModelPath } from '../helpers/model.js';
import { startServer } from '../helpers/server.js';

const [reasoningPath, plainPath] = await Promise.all([tinyReasoningModelPath(), tinyModelPath()]);
const serve = (path: string) => startServer(['serve', '--port', '0', '--model', path, '--model-id', 'tiny', '--threads', '1', '--context-size', '2048', '--prefix-sharing', 'off']);
const [server, plainServer] = await Promise.all([serve(reasoningPath), serve(plainPath)]);
t.teardown(() => Promise.all([server.stop(), plainServer.stop()]));
const client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused-locally', maxRetries: 0 });
const plainClient = new OpenAI({ baseURL: `${plainServer.url}/v1`, apiKey: 'unused-locally', maxRetries: 0 });

const question = 'Why is the sky blue?';
const asked: ChatMessage[] = [{ role: 'user', content: question }];

/**
 * The reasoning model's own view: its prompts' token counts (thinking on or off), and how many tokens
 * of the forced close (`\n</think>\n\n`) the block counts.
 */
async function reasoningModelFacts(): Promise<{
  prompt: (messages: ChatMessage[], thinking?: boolean) => string;
  promptTokens: (messages: ChatMessage[]) => number;
  closeTokensInBlock: number;
}> {
  const model = await loadAddon().loadModel(reasoningPath);
  t.teardown(() => model.dispose());
  const info = model.info();
  const piece = (token: number): string => model.detokenize(Int32Array.of(token), { special: true });
  const template = new ChatTemplate(info.chatTemplate, { bos: piece(info.bos), eos: piece(info.eos) });
  const close = model.tokenize('\n</think>\n\n', { addSpecial: false, parseSpecial: true });
  // The block ends with the token that completes `</think>`: that token and those before it are reasoning tokens.
  let inBlock = 1;
  while (!model.detokenize(close.slice(0, inBlock), { special: true }).includes('</think>')) inBlock++;
  const prompt = (messages: ChatMessage[], thinking?: boolean): string => template.render(messages, undefined, thinking);
  // As the engine and the greedy reference tokenize a rendered prompt.
  const promptTokens = (messages: ChatMessage[]): number => model.tokenize(prompt(messages), { addSpecial: true, parseSpecial: true }).length;
  return { prompt, promptTokens, closeTokensInBlock: inBlock };
}
const facts = await reasoningModelFacts();

type Output = OpenAI.Responses.ResponseOutputItem;
const reasoningText = (item: Output | undefined): string | undefined => (item?.type === 'reasoning' ? (item.content ?? []).map((part) => part.text).join('') : undefined);
const messageText = (item: Output | undefined): string | undefined =>
  item?.type === 'message' ? item.content.map((part) => (part.type === 'output_text' ? part.text : '')).join('') : undefined;
/** Items without their fresh ids, to compare two runs. */
const withoutIds = (output: Output[]): unknown[] => output.map(({ id: _id, ...rest }) => rest);

const budget = effortBudgets.minimal;
const max = budget + 40;
const minimal = { model: 'tiny', input: question, max_output_tokens: max, temperature: 0, reasoning: { effort: 'minimal' as const }, store: false };

t.test('effort minimal: a reasoning item of exactly the budget, then the message; reasoning tokens counted', async (t) => {
  const cold = await greedyReference(reasoningPath, asked, budget);
  const response = await client.responses.create({ ...minimal, user: 'minimal-json' });
  t.equal(response.output.length, 2, 'a reasoning item, then a message');
  const [reasoning, message] = response.output;
  t.match(reasoning, { type: 'reasoning', id: /^rs_[0-9a-f]{48}$/, summary: [], status: 'completed' });
  t.equal(reasoningText(reasoning), splitReasoning('reasoning', cold.text).reasoning, 'the first 256 tokens a cold run samples');
  t.equal(reasoning?.type === 'reasoning' ? reasoning.encrypted_content : 'absent', undefined, 'no encrypted_content unless included');
  t.ok((messageText(message) ?? '').length > 0, 'an answer follows the block');
  t.equal(response.output_text, messageText(message), "output_text is the answer's alone");
  t.same(response.usage?.output_tokens_details, { reasoning_tokens: budget + facts.closeTokensInBlock }, 'the budget plus the close up to </think>');
  t.equal(response.usage?.output_tokens, max, 'output tokens include the reasoning');
  t.same(response.reasoning, { effort: 'minimal', summary: null }, 'the effort is echoed');
  t.equal(response.status, 'incomplete', 'the answer ran to max_output_tokens');

  const stream = client.responses.stream({ ...minimal, user: 'minimal-sse' });
  const types: string[] = [];
  const sequence: number[] = [];
  let deltas = '';
  let last: OpenAI.Responses.ResponseStreamEvent | undefined;
  for await (const event of stream) {
    if (types.at(-1) !== event.type) types.push(event.type);
    sequence.push(event.sequence_number);
    if (event.type === 'response.reasoning_text.delta') deltas += event.delta;
    last = event;
  }
  const assembled = await stream.finalResponse();
  t.same(types, [
    'response.created',
    'response.in_progress',
    'response.output_item.added',
    'response.content_part.added',
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
    'response.incomplete',
  ]);
  t.same(
    sequence,
    sequence.map((_, i) => i),
    'sequence numbers count from 0',
  );
  t.equal(deltas, reasoningText(reasoning), 'the deltas add up to the item');
  if (last?.type !== 'response.incomplete') return t.fail(`the stream ended with ${last?.type}`);
  t.same(withoutIds(last.response.output), withoutIds(response.output), 'the streamed response holds the same items as the JSON one');
  t.same(last.response.usage, response.usage);
  // The SDK takes its final response from `response.completed` only; otherwise it assembles one from the events.
  t.same(
    assembled.output.map((item) => reasoningText(item) ?? messageText(item)),
    response.output.map((item) => reasoningText(item) ?? messageText(item)),
    'the SDK assembles the same reasoning and answer',
  );
});

t.test('effort none: thinking off, no reasoning item, all answer as a cold run of the closed-block prompt', async (t) => {
  const cold = await greedyReference(reasoningPath, facts.prompt(asked, false), 8);
  const response = await client.responses.create({
    model: 'tiny',
    input: question,
    max_output_tokens: 8,
    temperature: 0,
    reasoning: { effort: 'none' },
    store: false,
    user: 'off',
  });
  t.same(
    response.output.map((item) => item.type),
    ['message'],
  );
  t.equal(response.output_text, cold.text);
  t.same(response.usage?.output_tokens_details, { reasoning_tokens: 0 });
  t.equal(response.usage?.input_tokens, cold.promptTokens, 'the prompt carries the closed block');
  t.ok(cold.promptTokens > facts.promptTokens(asked), 'longer than the prompt that opens the block');
  const counted = await client.responses.inputTokens.count({ model: 'tiny', input: question, reasoning: { effort: 'none' } });
  t.equal(counted.input_tokens, cold.promptTokens, 'input_tokens counts the same prompt');
});

t.test('a previous_response_id chain: cached tokens end where the template drops the old think block; cold output', async (t) => {
  const MAX = 12;
  const said = [question, 'And at sunset?', 'And at night?'];
  // With no effort the random model never closes its block: each turn is all reasoning, cut at MAX.
  const colds: GreedyReference[] = [];
  const conversation: ChatMessage[] = [];
  for (const text of said) {
    conversation.push({ role: 'user', content: text });
    const cold = await greedyReference(reasoningPath, conversation, MAX);
    colds.push(cold);
    conversation.push({ role: 'assistant', content: '', reasoning: splitReasoning('reasoning', cold.text).reasoning });
  }
  let previous: string | null = null;
  const ids: string[] = [];
  for (const [i, text] of said.entries()) {
    const response: OpenAI.Responses.Response = await client.responses.create({
      model: 'tiny',
      input: text,
      previous_response_id: previous,
      max_output_tokens: MAX,
      temperature: 0,
    });
    const cold = colds[i] as GreedyReference;
    t.same(
      response.output.map((item) => item.type),
      ['reasoning'],
      `turn ${i + 1}: only reasoning`,
    );
    t.equal(reasoningText(response.output[0]), splitReasoning('reasoning', cold.text).reasoning, `turn ${i + 1}: the cold output`);
    t.same(response.usage?.output_tokens_details, { reasoning_tokens: MAX });
    t.equal(response.usage?.input_tokens, cold.promptTokens, `turn ${i + 1}: the whole conversation is its input`);
    // The cache holds the previous prompt, opening `<think>`, and its reasoning; the new prompt renders that
    // turn without its think block (it is before the last user message), so reuse stops at the block.
    const before = colds[i - 1];
    const expected = before === undefined ? 0 : expectedReuse(cachedAfter(before), cold);
    t.equal(response.usage?.input_tokens_details.cached_tokens, expected, `turn ${i + 1}: exactly the common prefix`);
    if (before !== undefined) t.ok(expected < before.promptTokens, `turn ${i + 1}: reuse ends inside the previous prompt, before its <think>`);
    previous = response.id;
    ids.push(response.id);
  }
  const stored = await client.responses.retrieve(ids[0] as string);
  t.equal(reasoningText(stored.output[0]), splitReasoning('reasoning', (colds[0] as GreedyReference).text).reasoning, 'GET returns the reasoning item');
  for (const id of ids.reverse()) await client.responses.delete(id);
});

t.test('reasoning sent back within a tool loop is rendered (after the last user message); before it, dropped', async (t) => {
  const call = { id: 'call_1', name: 'get_time', arguments: '{}' };
  const loop: ChatMessage[] = [
    ...asked,
    { role: 'assistant', content: '', reasoning: 'I should check.', toolCalls: [call] },
    { role: 'tool', content: 'noon', toolCallId: 'call_1', name: 'get_time' },
  ];
  const input: OpenAI.Responses.ResponseInputItem[] = [
    { role: 'user', content: question },
    { type: 'reasoning', id: 'rs_1', summary: [], content: [{ type: 'reasoning_text', text: 'I should check.' }] },
    { type: 'function_call', call_id: 'call_1', name: 'get_time', arguments: '{}' },
    { type: 'function_call_output', call_id: 'call_1', output: 'noon' },
  ];
  const withReasoning = await greedyReference(reasoningPath, loop, 1);
  const withoutReasoning = await greedyReference(
    reasoningPath,
    loop.map(({ reasoning: _r, ...rest }) => rest),
    1,
  );
  t.ok(withReasoning.promptTokens > withoutReasoning.promptTokens, 'the template keeps reasoning inside a tool loop');
  const counted = await client.responses.inputTokens.count({ model: 'tiny', input });
  t.equal(counted.input_tokens, withReasoning.promptTokens, 'the reasoning item is the call turn’s reasoning');
  const later = await client.responses.inputTokens.count({
    model: 'tiny',
    input: [...input, { type: 'message', role: 'assistant', content: 'Noon.' }, { role: 'user', content: 'Thanks' }],
  });
  const laterCold = await greedyReference(reasoningPath, [...loop, { role: 'assistant', content: 'Noon.' }, { role: 'user', content: 'Thanks' }], 1);
  t.equal(later.input_tokens, laterCold.promptTokens, 'after a new user message the template drops it');
});

t.test('an effort OpenAI does not know is a 400 naming it; a model that does not reason ignores the effort', async (t) => {
  const error = await client.responses.create({ model: 'tiny', input: question, reasoning: { effort: 'extreme' as OpenAI.ReasoningEffort } }).catch((e: unknown) => e);
  t.ok(error instanceof OpenAI.BadRequestError);
  t.match(error, { status: 400, error: { param: 'reasoning.effort', type: 'invalid_request_error' } });

  const cold = await greedyReference(plainPath, asked, 8);
  const response = await plainClient.responses.create({ model: 'tiny', input: question, max_output_tokens: 8, temperature: 0, reasoning: { effort: 'high' }, store: false });
  t.same(
    response.output.map((item) => item.type),
    ['message'],
  );
  t.equal(response.output_text, cold.text);
  t.same(response.usage?.output_tokens_details, { reasoning_tokens: 0 });
  t.same(response.reasoning, { effort: 'high', summary: null });
});
