// A reasoning model behind the official `openai` client: the tiny model with a Qwen3-style template
// whose prompt opens `<think>` (make-model --reasoning), so everything it generates before a
// `</think>` is reasoning. `reasoning_content` on the message and in stream deltas, `reasoning_effort`
// bounding the think block to the documented budget (the engine writes `</think>` itself), `none`
// turning thinking off, reasoning tokens in usage; an agent's second turn reusing exactly the tokens
// before the previous turn's think block (the template drops old reasoning), with the output of a
// cold run; and a model that does not reason answering as before.
import t from 'tap';
import OpenAI from 'openai';
import { cachedAfter, expectedReuse, greedyReference } from '../helpers/greedy.js';
import { tinyModelPath, tinyReasoningModelPath } from '../helpers/model.js';
import { startServer } from '../helpers/server.js';
import { splitReasoning } from '../../worker/tools/reasoning.js';
import { effortBudgets } from '../../worker/api/reasoning-effort.js';
import type { ChatMessage } from '../../shared/protocol/messages.js';

const [reasoningPath, plainPath] = [await tinyReasoningModelPath(), await tinyModelPath()];
const serve = (path: string) => startServer(['serve', '--port', '0', '--model', path, '--model-id', 'tiny', '--threads', '1', '--context-size', '2048']);
const [server, plainServer] = [await serve(reasoningPath), await serve(plainPath)];
t.teardown(() => Promise.all([server.stop(), plainServer.stop()]));
const client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused-locally', maxRetries: 0 });
const plainClient = new OpenAI({ baseURL: `${plainServer.url}/v1`, apiKey: 'unused-locally', maxRetries: 0 });

/** The fields reasoning servers add to OpenAI's types. */
type WithReasoning = { reasoning_content?: string };
const reasoningOf = (message: object | undefined): string | undefined => (message as WithReasoning | undefined)?.reasoning_content;

const question = [{ role: 'user' as const, content: 'Why is the sky blue?' }];
const MAX = 16;

t.test('reasoning_content on the message and in the stream: all the output, since the model never closes its block', async (t) => {
  const cold = await greedyReference(reasoningPath, question, MAX);
  const expected = splitReasoning('reasoning', cold.text);
  t.equal(expected.answer, '', 'the random model writes no </think> of its own');
  const completion = await client.chat.completions.create({ model: 'tiny', messages: question, max_tokens: MAX, temperature: 0, user: 'json' });
  const message = completion.choices[0]?.message;
  t.equal(reasoningOf(message), expected.reasoning);
  t.equal(message?.content, '');
  t.same(completion.usage?.completion_tokens_details, { reasoning_tokens: cold.tokens.length });
  t.equal(completion.usage?.prompt_tokens, cold.promptTokens);

  const stream = await client.chat.completions.create({
    model: 'tiny',
    messages: question,
    max_tokens: MAX,
    temperature: 0,
    stream: true,
    stream_options: { include_usage: true },
    user: 'sse',
  });
  let [reasoning, content, reasoningChunks] = ['', '', 0];
  let usage: OpenAI.CompletionUsage | undefined;
  for await (const chunk of stream) {
    const delta = chunk.choices[0]?.delta;
    const part = reasoningOf(delta);
    if (part !== undefined) [reasoning, reasoningChunks] = [reasoning + part, reasoningChunks + 1];
    content += delta?.content ?? '';
    usage = chunk.usage ?? usage;
  }
  t.equal(reasoning, expected.reasoning, 'the deltas add up to the same reasoning');
  t.ok(reasoningChunks > 1, `streamed as it came (${reasoningChunks} chunks)`);
  t.equal(content, '');
  t.same(usage?.completion_tokens_details, { reasoning_tokens: cold.tokens.length });
});

t.test('reasoning_effort minimal: exactly its budget of sampled tokens, then the engine closes the block and the answer follows', async (t) => {
  const budget = effortBudgets.minimal;
  const cold = await greedyReference(reasoningPath, question, budget);
  const max = budget + 40;
  const completion = await client.chat.completions.create({ model: 'tiny', messages: question, max_tokens: max, temperature: 0, reasoning_effort: 'minimal', user: 'minimal' });
  const message = completion.choices[0]?.message;
  t.equal(reasoningOf(message), splitReasoning('reasoning', cold.text).reasoning, 'the reasoning is the first 256 tokens a cold run samples');
  t.notMatch(reasoningOf(message), '</think>');
  t.ok((message?.content ?? '').length > 0, 'an answer follows the block');
  const reasoningTokens = completion.usage?.completion_tokens_details?.reasoning_tokens ?? 0;
  t.ok(reasoningTokens > budget && reasoningTokens <= budget + 4, `the budget plus the close's tokens (${reasoningTokens})`);
  t.equal(completion.usage?.completion_tokens, max);

  const stream = await client.chat.completions.create({
    model: 'tiny',
    messages: question,
    max_tokens: max,
    temperature: 0,
    reasoning_effort: 'minimal',
    stream: true,
    user: 'minimal-sse',
  });
  const kinds: string[] = []; // the kind of each delta in order, repeats collapsed
  const seen = (kind: string): void => void (kinds.at(-1) !== kind && kinds.push(kind));
  let [reasoning, content] = ['', ''];
  for await (const chunk of stream) {
    const delta = chunk.choices[0]?.delta;
    const part = reasoningOf(delta);
    if (part !== undefined) {
      reasoning += part;
      seen('reasoning');
    }
    if (delta?.content !== undefined && delta.content !== null && delta.content !== '') {
      content += delta.content;
      seen('content');
    }
  }
  t.same([reasoning, content], [reasoningOf(message), message?.content], 'streamed: the same reasoning and answer');
  t.same(kinds, ['reasoning', 'content'], 'all reasoning deltas come before the answer');
});

t.test('reasoning_effort none: thinking off, the prompt closes an empty block and the output is all answer', async (t) => {
  const on = await client.chat.completions.create({ model: 'tiny', messages: question, max_tokens: 4, temperature: 0, user: 'on' });
  const off = await client.chat.completions.create({ model: 'tiny', messages: question, max_tokens: 8, temperature: 0, reasoning_effort: 'none', user: 'off' });
  t.equal(reasoningOf(off.choices[0]?.message), undefined);
  t.ok((off.choices[0]?.message.content ?? '').length > 0);
  t.equal(off.usage?.completion_tokens_details, undefined, 'no reasoning tokens to count');
  t.ok((off.usage?.prompt_tokens ?? 0) > (on.usage?.prompt_tokens ?? 0), 'the prompt carries the closed block');
});

t.test('a reasoning_effort OpenAI does not know is a 400 naming it', async (t) => {
  const error = await client.chat.completions
    .create({ model: 'tiny', messages: question, reasoning_effort: 'extreme' as unknown as OpenAI.ReasoningEffort })
    .catch((e: unknown) => e);
  t.match(error, { status: 400, error: { param: 'reasoning_effort' } });
});

t.test("an agent's next turn reuses the tokens before the think block the template drops, and answers as a cold run", async (t) => {
  const first = await client.chat.completions.create({ model: 'tiny', messages: question, max_tokens: 12, temperature: 0, user: 'thinker' });
  const thought = reasoningOf(first.choices[0]?.message) ?? '';
  const next: ChatMessage[] = [...question, { role: 'assistant', content: '', reasoning: thought }, { role: 'user', content: 'And at sunset?' }];
  const [cold1, cold2] = [await greedyReference(reasoningPath, question, 12), await greedyReference(reasoningPath, next, MAX)];
  const messages = [...question, { role: 'assistant' as const, content: '', reasoning_content: thought }, { role: 'user' as const, content: 'And at sunset?' }];
  const second = await client.chat.completions.create({ model: 'tiny', messages, max_tokens: MAX, temperature: 0, user: 'thinker' }).withResponse();
  const cached = second.data.usage?.prompt_tokens_details?.cached_tokens;
  t.equal(second.response.headers.get('x-semantic-cache'), 'hot');
  t.equal(cached, expectedReuse(cachedAfter(cold1), cold2), 'exactly the common token prefix of the cached turn and the new prompt');
  t.ok((cached ?? 0) < cold1.promptTokens, `the prefix ends inside the first turn's prompt, before its <think> (${cached} of ${cold1.promptTokens})`);
  t.equal(reasoningOf(second.data.choices[0]?.message), splitReasoning('reasoning', cold2.text).reasoning, 'warm output equals a cold run');
});

t.test('a model that does not reason ignores reasoning_effort and answers as before', async (t) => {
  const cold = await greedyReference(plainPath, question, MAX);
  const completion = await plainClient.chat.completions.create({ model: 'tiny', messages: question, max_tokens: MAX, temperature: 0, reasoning_effort: 'high' });
  t.equal(completion.choices[0]?.message.content, cold.text);
  t.equal(reasoningOf(completion.choices[0]?.message), undefined);
  t.equal(completion.usage?.completion_tokens_details, undefined);
  const off = await plainClient.chat.completions.create({ model: 'tiny', messages: question, max_tokens: MAX, temperature: 0, reasoning_effort: 'none' });
  t.equal(off.choices[0]?.message.content, cold.text, "thinking off changes nothing for a template without the switch's block");
});
