// Legacy completions (`POST /v1/completions`) with the official `openai` client against a real server:
// the raw prompt (no chat template) continued greedily equals a cold run computed with the addon, as
// JSON and as a stream, usage exact; the same agent's second identical request reads its cache; what
// we do not implement is the SDK's BadRequestError naming the field.
import t from 'tap';
import OpenAI from 'openai';
import { cachedAfter, expectedReuse, greedyReference } from '../helpers/greedy.js';
import { tinyModelPath } from '../helpers/model.js';
import { startServer } from '../helpers/server.js';

const modelPath = await tinyModelPath();
const MAX = 12;
const server = await startServer(['serve', '--port', '0', '--model', modelPath, '--model-id', 'tiny', '--threads', '1', '--context-size', '2048']);
t.teardown(() => server.stop());
const client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused-locally', maxRetries: 0 });
const failure = (call: Promise<unknown>): Promise<unknown> =>
  call.then(
    () => 'resolved',
    (error: unknown) => error,
  );

const prompt = 'The capital of France is';
const reference = await greedyReference(modelPath, prompt, MAX);
const finishReason = reference.tokens.length === MAX ? 'length' : 'stop';
const coldUsage = {
  prompt_tokens: reference.promptTokens,
  completion_tokens: reference.tokens.length,
  total_tokens: reference.promptTokens + reference.tokens.length,
  prompt_tokens_details: { cached_tokens: 0 },
};

t.test('a completion and the same as a stream: greedy text of the raw prompt and exact usage', async (t) => {
  t.ok(reference.tokens.length > 1, `the reference has text to compare (${JSON.stringify(reference.text)})`);
  const { data: completion, response } = await client.completions.create({ model: 'tiny', prompt, max_tokens: MAX, temperature: 0, user: 'cmpl-json' }).withResponse();
  t.match(completion.id, /^cmpl-/);
  t.equal(completion.object, 'text_completion');
  t.equal(completion.model, 'tiny');
  t.strictSame(completion.choices, [{ text: reference.text, index: 0, logprobs: null, finish_reason: finishReason }]);
  t.strictSame(completion.usage, coldUsage, 'prompt_tokens: the raw prompt as the model tokenizes it, no template');
  t.equal(response.headers.get('x-semantic-cache'), 'miss');

  const stream = await client.completions.create({
    model: 'tiny',
    prompt: [prompt],
    max_tokens: MAX,
    temperature: 0,
    stream: true,
    stream_options: { include_usage: true },
    user: 'cmpl-stream',
  });
  const chunks: OpenAI.Completion[] = [];
  for await (const chunk of stream) chunks.push(chunk);
  t.ok(
    chunks.every((c) => c.object === 'text_completion' && c.id === chunks[0]?.id),
    'text_completion chunks of one id',
  );
  t.equal(chunks.map((c) => c.choices[0]?.text ?? '').join(''), reference.text, 'the streamed text is the same');
  const finishes = chunks.flatMap((c) => c.choices.map((choice) => choice.finish_reason)).filter((reason) => reason !== null);
  t.strictSame(finishes, [finishReason], 'one chunk carries the finish reason');
  t.strictSame(chunks.at(-1)?.choices, [], 'the usage chunk comes last, with no choices');
  t.strictSame(chunks.at(-1)?.usage, coldUsage);
});

t.test("the same agent's second identical request reads its cache and gives the same text", async (t) => {
  const params = { model: 'tiny', prompt, max_tokens: MAX, temperature: 0, user: 'cmpl-agent' };
  await client.completions.create(params);
  const { data: second, response } = await client.completions.create(params).withResponse();
  t.equal(response.headers.get('x-semantic-cache'), 'hot');
  t.equal(second.usage?.prompt_tokens_details?.cached_tokens, expectedReuse(cachedAfter(reference), reference));
  t.equal(second.usage?.prompt_tokens, reference.promptTokens);
  t.equal(second.choices[0]?.text, reference.text);
});

t.test('what is not supported is a BadRequestError naming the field', async (t) => {
  const base = { model: 'tiny', max_tokens: 4 };
  t.match(await failure(client.completions.create({ ...base, prompt: ['a', 'b'] })), { status: 400, error: { param: 'prompt', code: 'ERR_BAD_REQUEST' } });
  t.match(await failure(client.completions.create({ ...base, prompt: [1, 2, 3] })), { status: 400, error: { param: 'prompt' } });
  t.match(await failure(client.completions.create({ ...base, prompt, n: 2 })), { status: 400, error: { param: 'n' } });
  for (const extra of [{ echo: true }, { logprobs: 1 }, { best_of: 2 }, { suffix: '!' }]) {
    const param = Object.keys(extra)[0] ?? '';
    const error = await failure(client.completions.create({ ...base, prompt, ...extra }));
    t.ok(error instanceof OpenAI.BadRequestError, `${param}: a BadRequestError`);
    t.match(error, { status: 400, error: { param, message: /not supported/ } });
  }
  t.match(await failure(client.completions.create({ ...base, model: 'other', prompt })), { status: 404, error: { code: 'ERR_MODEL_NOT_FOUND', param: 'model' } });
});
