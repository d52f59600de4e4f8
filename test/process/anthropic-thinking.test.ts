// Extended thinking on a reasoning model behind the official `@anthropic-ai/sdk`, unchanged: the tiny
// model with a Qwen3-style template whose prompt opens `<think>` (make-model --reasoning), so all it
// generates before a `</think>` is thinking. A thinking block first (its text, its signature), then the
// answer's blocks; in streams thinking_delta and signature_delta; budget_tokens closing the block
// (the engine writes `</think>`) so an answer follows; disabled and absent thinking all text; a thinking
// block sent back read as the turn's reasoning, refused when modified; an agent's next turn reusing
// exactly the tokens before the previous turn's think block, with a cold run's output; and a model
// that does not reason answering every thinking request without a thinking block.
import t from 'tap';
import Anthropic, { BadRequestError } from '@anthropic-ai/sdk';
import { cachedAfter, expectedReuse, greedyReference } from '../helpers/greedy.js';
import { tinyModelPath, tinyReasoningModelPath } from '../helpers/model.js';
import { startServer } from '../helpers/server.js';
import { splitReasoning } from '../../worker/tools/reasoning.js';
import { thinkingSignature } from '../../worker/api/anthropic/thinking.js';
import type { ChatMessage } from '../../shared/protocol/messages.js';

const [reasoningPath, plainPath] = [await tinyReasoningModelPath(), await tinyModelPath()];
const serve = (path: string, context: number) => startServer(['serve', '--port', '0', '--model', path, '--model-id', 'tiny', '--threads', '1', '--context-size', String(context)]);
// The plain server's small context caps a thinking request's max_tokens (over 1024) at the room left.
const [server, plainServer] = [await serve(reasoningPath, 2048), await serve(plainPath, 256)];
t.teardown(() => Promise.all([server.stop(), plainServer.stop()]));
const client = new Anthropic({ baseURL: server.url, apiKey: 'unused-locally', maxRetries: 0 });
const plainClient = new Anthropic({ baseURL: plainServer.url, apiKey: 'unused-locally', maxRetries: 0 });

const question: Anthropic.MessageParam[] = [{ role: 'user', content: 'Why is the sky blue?' }];
const chat: ChatMessage[] = [{ role: 'user', content: 'Why is the sky blue?' }];
const MAX = 16;
const counted = { model: 'tiny', messages: question };
const base = { ...counted, temperature: 0 };
const thinkingBlock = (thinking: string) => ({ type: 'thinking', thinking, signature: thinkingSignature(thinking) });

t.test('adaptive: the thinking block holds all the output (the model never closes it), then an empty text block', async (t) => {
  const cold = await greedyReference(reasoningPath, chat, MAX);
  const expected = splitReasoning('reasoning', cold.text);
  t.equal(expected.answer, '', 'the random model writes no </think> of its own');
  const message = await client.messages.create({ ...base, max_tokens: MAX, thinking: { type: 'adaptive' }, metadata: { user_id: 'adaptive' } });
  t.strictSame(message.content, [thinkingBlock(expected.reasoning), { type: 'text', text: '' }]);
  t.equal(message.stop_reason, 'max_tokens');
  t.strictSame(
    message.usage,
    { input_tokens: cold.promptTokens, output_tokens: MAX, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 },
    'output_tokens count the thinking',
  );
  const count = await client.messages.countTokens({ ...counted, thinking: { type: 'adaptive' } });
  t.equal(count.input_tokens, cold.promptTokens);
});

t.test('enabled with budget_tokens 1024: the engine closes the block at the budget, the answer follows; streamed as the real API does', async (t) => {
  const budget = 1024;
  const max = budget + 24;
  const stream = client.messages.stream({ ...base, max_tokens: max, thinking: { type: 'enabled', budget_tokens: budget }, metadata: { user_id: 'budget' } });
  const kinds: string[] = []; // each event's type (a delta's type for deltas), repeats collapsed
  let thinking = '';
  for await (const event of stream) {
    const kind = event.type === 'content_block_delta' ? event.delta.type : event.type === 'content_block_start' ? `start ${event.content_block.type}` : event.type;
    if (kinds.at(-1) !== kind) kinds.push(kind);
    if (event.type === 'content_block_delta' && event.delta.type === 'thinking_delta') thinking += event.delta.thinking;
  }
  t.strictSame(kinds, [
    'message_start',
    'start thinking',
    'thinking_delta',
    'signature_delta',
    'content_block_stop',
    'start text',
    'text_delta',
    'content_block_stop',
    'message_delta',
    'message_stop',
  ]);
  const message = await stream.finalMessage();
  const [block, text] = message.content;
  t.strictSame(block, thinkingBlock(thinking), 'the deltas add up to the final thinking, its signature the one for that text');
  t.notMatch(thinking, '</think>');
  const adaptive = splitReasoning('reasoning', (await greedyReference(reasoningPath, chat, MAX)).text).reasoning;
  t.ok(thinking.startsWith(adaptive) && thinking.length > adaptive.length * 8, 'greedy: the thinking goes on from where the short run stopped');
  t.ok(text?.type === 'text' && text.text.length > 0, 'an answer follows the block');
  t.equal(message.content.length, 2);
  t.equal(message.usage.output_tokens, max, 'every token generated, thinking and answer, is an output token');
  t.equal(message.stop_reason, 'max_tokens');
});

t.test('disabled and absent: the prompt closes an empty block, the output is all text, as a cold run with enable_thinking false', async (t) => {
  const cold = await greedyReference(reasoningPath, chat, MAX, false);
  const disabled = await client.messages.create({ ...base, max_tokens: MAX, thinking: { type: 'disabled' }, metadata: { user_id: 'off' } });
  t.strictSame(disabled.content, [{ type: 'text', text: cold.text }]);
  t.equal(disabled.usage.input_tokens + (disabled.usage.cache_read_input_tokens ?? 0), cold.promptTokens);
  const absent = await client.messages.create({ ...base, max_tokens: MAX, metadata: { user_id: 'absent' } });
  t.strictSame(absent.content, disabled.content, 'no thinking field is thinking off, as on the real API');
  const [off, on] = [await client.messages.countTokens(counted), await client.messages.countTokens({ ...counted, thinking: { type: 'adaptive' } })];
  t.equal(off.input_tokens, cold.promptTokens, 'count_tokens renders with thinking off too');
  t.ok(off.input_tokens > on.input_tokens, 'the closed empty block is part of the prompt');
});

t.test("an agent's next turn sends its thinking back: it reuses the tokens before the think block the template drops, and answers as a cold run", async (t) => {
  const params = { ...base, thinking: { type: 'adaptive' as const }, metadata: { user_id: 'thinker' } };
  const first = await client.messages.create({ ...params, max_tokens: 12 });
  const [thought] = first.content;
  if (thought?.type !== 'thinking') throw new Error('expected a thinking block first');
  const next: ChatMessage[] = [...chat, { role: 'assistant', content: '', reasoning: thought.thinking }, { role: 'user', content: 'And at sunset?' }];
  const [cold1, cold2] = [await greedyReference(reasoningPath, chat, 12), await greedyReference(reasoningPath, next, MAX)];
  const messages: Anthropic.MessageParam[] = [...question, { role: 'assistant', content: first.content }, { role: 'user', content: 'And at sunset?' }];
  const second = await client.messages.create({ ...params, messages, max_tokens: MAX }).withResponse();
  t.equal(second.response.headers.get('x-semantic-cache'), 'hot');
  const cached = second.data.usage.cache_read_input_tokens;
  t.equal(cached, expectedReuse(cachedAfter(cold1), cold2), 'exactly the common token prefix of the cached turn and the new prompt');
  t.ok((cached ?? 0) < cold1.promptTokens, `the prefix ends inside the first turn's prompt, before its <think> (${cached} of ${cold1.promptTokens})`);
  t.equal(second.data.usage.input_tokens, cold2.promptTokens - (cached ?? 0));
  t.strictSame(second.data.content[0], thinkingBlock(splitReasoning('reasoning', cold2.text).reasoning), 'warm output equals a cold run');

  const modified = [...question, { role: 'assistant' as const, content: [{ ...thought, thinking: `${thought.thinking}!` }] }, { role: 'user' as const, content: 'And?' }];
  const error = await client.messages.create({ ...params, messages: modified, max_tokens: MAX }).catch((e: unknown) => e);
  t.ok(error instanceof BadRequestError, 'a thinking block changed after we signed it is a 400');
  t.match((error as BadRequestError).error, { type: 'error', error: { type: 'invalid_request_error', message: 'messages.1.content.0: Invalid `signature` in `thinking` block' } });
});

t.test('a model that does not reason: every thinking request is a 200 without a thinking block, its text a cold run', async (t) => {
  const room = 256 - (await plainClient.messages.countTokens(counted)).input_tokens;
  const cold = await greedyReference(plainPath, chat, room);
  for (const thinking of [{ type: 'enabled', budget_tokens: 1024 }, { type: 'adaptive' }, { type: 'disabled' }] as const) {
    const message = await plainClient.messages.create({ ...base, max_tokens: 2048, thinking });
    t.strictSame(message.content, [{ type: 'text', text: cold.text }], thinking.type);
    t.equal(message.usage.output_tokens, cold.tokens.length, 'max_tokens capped at the room the context leaves');
  }
});
