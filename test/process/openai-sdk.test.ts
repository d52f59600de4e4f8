// The official `openai` client, unchanged but for its base URL, against a real server: a completion,
// the same as a stream, a second turn whose usage reports the cached tokens, and errors as the SDK's
// typed exceptions.
import t from 'tap';
import OpenAI from 'openai';
import { cachedAfter, expectedReuse, greedyReference } from '../helpers/greedy.js';
import { tinyModelPath } from '../helpers/model.js';
import { startServer } from '../helpers/server.js';

const modelPath = await tinyModelPath();
/** What a call that must fail rejected with (the SDK's typed error). */
const failure = (call: Promise<unknown>): Promise<unknown> =>
  call.then(
    () => 'resolved',
    (error: unknown) => error,
  );
const MAX = 12;
const server = await startServer(['serve', '--port', '0', '--model', modelPath, '--model-id', 'tiny', '--threads', '1', '--context-size', '2048']);
t.teardown(() => server.stop());
const client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused-locally', maxRetries: 0 });

// Typed by inference, so the same literal suits the SDK's message params and the reference's ChatMessage[].
const opening = [
  { role: 'system' as const, content: 'You are terse.' },
  { role: 'user' as const, content: 'Name a colour.' },
];

t.test('a completion and the same as a stream: greedy text and usage equal a cold run', async (t) => {
  const cold = await greedyReference(modelPath, opening, MAX);
  const completion = await client.chat.completions.create({ model: 'tiny', messages: opening, max_tokens: MAX, temperature: 0, user: 'sdk-json' });
  t.equal(completion.object, 'chat.completion');
  t.equal(completion.choices[0]?.message.content, cold.text);
  t.equal(completion.choices[0]?.finish_reason, cold.tokens.length === MAX ? 'length' : 'stop');
  t.match(completion.usage, { prompt_tokens: cold.promptTokens, completion_tokens: cold.tokens.length, prompt_tokens_details: { cached_tokens: 0 } });

  const stream = await client.chat.completions.create({
    model: 'tiny',
    messages: opening,
    max_tokens: MAX,
    temperature: 0,
    stream: true,
    stream_options: { include_usage: true },
    user: 'sdk-stream',
  });
  let text = '';
  let usage: OpenAI.CompletionUsage | undefined;
  for await (const chunk of stream) {
    text += chunk.choices[0]?.delta.content ?? '';
    usage = chunk.usage ?? usage;
  }
  t.equal(text, cold.text, 'the streamed text is the same');
  t.match(usage, { prompt_tokens: cold.promptTokens, completion_tokens: cold.tokens.length });
});

t.test("a second turn reports the agent's cached tokens", async (t) => {
  const first = await client.chat.completions.create({ model: 'tiny', messages: opening, max_tokens: MAX, temperature: 0, user: 'sdk-agent' });
  const next = [...opening, { role: 'assistant' as const, content: first.choices[0]?.message.content ?? '' }, { role: 'user' as const, content: 'Another one.' }];
  const [cold1, cold2] = [await greedyReference(modelPath, opening, MAX), await greedyReference(modelPath, next, MAX)];
  const second = await client.chat.completions.create({ model: 'tiny', messages: next, max_tokens: MAX, temperature: 0, user: 'sdk-agent' }).withResponse();
  t.equal(second.response.headers.get('x-semantic-cache'), 'hot');
  t.equal(second.data.usage?.prompt_tokens_details?.cached_tokens, expectedReuse(cachedAfter(cold1), cold2), 'exactly the common prefix');
  t.equal(second.data.choices[0]?.message.content, cold2.text, 'and the output of a cold run');
});

t.test('errors arrive as the SDK typed exceptions', async (t) => {
  t.match(await failure(client.chat.completions.create({ model: 'other', messages: opening })), { status: 404, error: { code: 'ERR_MODEL_NOT_FOUND', param: 'model' } });
  t.match(await failure(client.chat.completions.create({ model: 'tiny', messages: opening, n: 2 })), { status: 400 });
  const empty = await client.chat.completions.create({ model: 'tiny', messages: [] }).catch((error: unknown) => error);
  t.ok(empty instanceof OpenAI.BadRequestError, 'a BadRequestError');
  t.match(empty, { status: 400, error: { param: 'messages', type: 'invalid_request_error' } });
  const models = await client.models.list();
  t.same(
    models.data.map((m) => m.id),
    ['tiny'],
  );
});
