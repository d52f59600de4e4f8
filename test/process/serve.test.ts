// End to end: the real `semantic serve` process on a loopback port, the real addon and tiny model.
// Greedy output must equal a cold single-sequence run of the same prompt, token for token.
import t from 'tap';
import { greedyReference } from '../helpers/greedy.js';
import { tinyModelPath } from '../helpers/model.js';
import { readSseData } from '../helpers/sse.js';
import { startServer } from '../helpers/server.js';

const modelPath = await tinyModelPath();
const server = await startServer(['serve', '--port', '0', '--model', modelPath, '--model-id', 'tiny', '--threads', '1', '--context-size', '2048', '--max-sequences', '4']);
t.teardown(() => server.stop());

const chat = (content: string) => [{ role: 'user' as const, content }];
const post = (body: unknown, init: RequestInit = {}) =>
  fetch(`${server.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body), ...init });
const engineStats = async () => (await (await fetch(`${server.url}/debug/engine`)).json()) as Record<string, number>;
const contentOf = (events: string[]) =>
  events
    .filter((e) => e !== '[DONE]')
    .map((e) => JSON.parse(e) as { choices: { delta?: { content?: string } }[] })
    .map((c) => c.choices[0]?.delta?.content ?? '')
    .join('');

t.test('non-streaming completion equals the cold greedy reference', async (t) => {
  const reference = await greedyReference(modelPath, chat('Tell me a story about llamas.'), 16);
  t.equal(reference.tokens.length, 16, 'the reference runs the full 16 tokens (no end token)');
  const response = await post(
    { model: 'tiny', messages: chat('Tell me a story about llamas.'), max_tokens: 16, temperature: 0 },
    {
      headers: { 'content-type': 'application/json', 'x-request-id': 'req-e2e-1' },
    },
  );
  t.equal(response.status, 200);
  t.equal(response.headers.get('x-request-id'), 'req-e2e-1');
  const body = (await response.json()) as {
    object: string;
    choices: { message: { role: string; content: string }; finish_reason: string }[];
    usage: { prompt_tokens: number; completion_tokens: number; total_tokens: number; prompt_tokens_details: { cached_tokens: number } };
  };
  t.equal(body.object, 'chat.completion');
  t.equal(body.choices[0]?.message.role, 'assistant');
  t.equal(body.choices[0]?.message.content, reference.text);
  t.equal(body.choices[0]?.finish_reason, 'length');
  t.same(body.usage, { prompt_tokens: reference.promptTokens, completion_tokens: 16, total_tokens: reference.promptTokens + 16, prompt_tokens_details: { cached_tokens: 0 } });
});

t.test('streaming completion: role chunk, deltas, finish chunk, usage chunk, [DONE]', async (t) => {
  const reference = await greedyReference(modelPath, chat('Stream me something.'), 12);
  const response = await post({ model: 'tiny', messages: chat('Stream me something.'), max_tokens: 12, temperature: 0, stream: true, stream_options: { include_usage: true } });
  t.equal(response.status, 200);
  t.match(response.headers.get('content-type'), /^text\/event-stream/);
  const events = await readSseData(response);
  t.equal(events.at(-1), '[DONE]', 'ends with [DONE]');
  const chunks = events.slice(0, -1).map(
    (e) =>
      JSON.parse(e) as {
        id: string;
        object: string;
        choices: { delta: Record<string, string>; finish_reason: string | null }[];
        usage?: { completion_tokens: number; prompt_tokens: number };
      },
  );
  t.ok(
    chunks.every((c) => c.object === 'chat.completion.chunk' && c.id === chunks[0]?.id),
    'one id, chunk objects',
  );
  t.same(chunks[0]?.choices[0]?.delta, { role: 'assistant', content: '' }, 'first chunk announces the role');
  const finish = chunks.at(-2);
  t.same(finish?.choices[0], { index: 0, delta: {}, logprobs: null, finish_reason: 'length' });
  const usage = chunks.at(-1);
  t.same(usage?.choices, []);
  t.same(usage?.usage, { prompt_tokens: reference.promptTokens, completion_tokens: 12, total_tokens: reference.promptTokens + 12, prompt_tokens_details: { cached_tokens: 0 } });
  t.equal(contentOf(events), reference.text, 'streamed text equals the cold greedy reference');
});

t.test('two concurrent streams share decode steps and both complete correctly', async (t) => {
  const [refA, refB] = [await greedyReference(modelPath, chat('Agent A speaks.'), 120), await greedyReference(modelPath, chat('Agent B answers.'), 20)];
  const before = await engineStats();
  const responseA = await post({ model: 'tiny', messages: chat('Agent A speaks.'), max_tokens: 120, temperature: 0, stream: true });
  let startB!: () => void;
  const bStarted = new Promise<void>((resolve) => (startB = resolve));
  const streamA = readSseData(responseA, (data) => {
    if (data.includes('"content":"') && !data.includes('"content":""')) startB();
  });
  await bStarted;
  const streamB = readSseData(await post({ model: 'tiny', messages: chat('Agent B answers.'), max_tokens: 20, temperature: 0, stream: true }));
  const [eventsA, eventsB] = await Promise.all([streamA, streamB]);
  t.equal(eventsA.at(-1), '[DONE]');
  t.equal(eventsB.at(-1), '[DONE]');
  t.equal(contentOf(eventsA), refA.text, 'A equals its solo run');
  t.equal(contentOf(eventsB), refB.text, 'B equals its solo run');
  const after = await engineStats();
  t.ok((after.multiSequenceSteps ?? 0) > (before.multiSequenceSteps ?? 0), 'some decode steps carried both sequences');
  t.equal(after.activeSequences, 0);
});

t.test('an aborted stream frees its sequence at once', async (t) => {
  const controller = new AbortController();
  const response = await post({ model: 'tiny', messages: chat('A very long answer please.'), max_tokens: 1500, temperature: 0, stream: true }, { signal: controller.signal });
  let seen = 0;
  await readSseData(response, () => {
    if (++seen === 3) controller.abort();
  }).catch((error: Error) => t.equal(error.name, 'AbortError'));
  const next = await post({ model: 'tiny', messages: chat('Still there?'), max_tokens: 4, temperature: 0 });
  t.equal(next.status, 200, 'the next request works');
  t.equal(((await next.json()) as { usage: { completion_tokens: number } }).usage.completion_tokens, 4);
  const stats = await engineStats();
  t.equal(stats.activeSequences, 0, 'no sequence leaked');
  t.equal((stats.freeSequences ?? 0) + (stats.idleSequences ?? 0), 4, 'every sequence is free or holds an idle agent cache');
});

t.test('malformed JSON is a 400 in the OpenAI error shape', async (t) => {
  const response = await fetch(`${server.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"model": "tiny", "messages": [' });
  t.equal(response.status, 400);
  const body = (await response.json()) as { error: { type: string; code: string; message: string } };
  t.equal(body.error.type, 'invalid_request_error');
  t.equal(body.error.code, 'ERR_INVALID_JSON');
  t.ok(response.headers.get('x-request-id'));
});

t.test('a prompt larger than the context is a 400 with both numbers', async (t) => {
  const response = await post({ model: 'tiny', messages: chat('word '.repeat(3000)), max_tokens: 10 });
  t.equal(response.status, 400);
  const body = (await response.json()) as { error: { code: string; message: string } };
  t.equal(body.error.code, 'ERR_CONTEXT_EXCEEDED');
  t.match(body.error.message, /needs \d+ tokens .* holds 2048/);
});
