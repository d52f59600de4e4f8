// Legacy completion bodies (`POST /v1/completions`): valid ones map to the exact GenerateMessage with a
// raw text input (no chat template); what we do not implement is a 400 naming the field; and bodies
// and chunks are worded as OpenAI's `text_completion` objects.
import t from 'tap';
import { parseCompletionRequest, toCompletionGenerateMessage } from '../../worker/api/openai/completions-schema.js';
import { completionFormat } from '../../worker/api/openai/completions.js';
import type { CompletionMeta } from '../../worker/api/openai/bodies.js';

const generateFor = (body: unknown): unknown => toCompletionGenerateMessage(parseCompletionRequest(body), 'req-1', 'agent-1');

t.test('a minimal body: the raw prompt, OpenAI defaults, no max tokens', async (t) => {
  t.strictSame(generateFor({ model: 'm', prompt: 'Once upon' }), {
    type: 'generate',
    requestId: 'req-1',
    agentId: 'agent-1',
    input: { kind: 'text', prompt: 'Once upon' },
    sampling: { temperature: 1, topP: 1, topK: 0, minP: 0, repeatPenalty: 1, frequencyPenalty: 0, presencePenalty: 0 },
    stop: [],
  });
});

t.test('every supported field maps; an array of one prompt is that prompt; unknown fields are ignored', async (t) => {
  const body = {
    model: 'm',
    prompt: ['Once upon'],
    max_tokens: 16,
    temperature: 0,
    top_p: 0.5,
    stop: 'END',
    seed: -1,
    presence_penalty: 1,
    frequency_penalty: -1,
    n: 1,
    best_of: 1,
    echo: false,
    logprobs: null,
    suffix: null,
    stream: true,
    stream_options: { include_usage: true },
    user: 'agent-7',
    logit_bias: {},
  };
  t.strictSame(generateFor(body), {
    type: 'generate',
    requestId: 'req-1',
    agentId: 'agent-1',
    input: { kind: 'text', prompt: 'Once upon' },
    sampling: { temperature: 0, topP: 0.5, topK: 0, minP: 0, repeatPenalty: 1, frequencyPenalty: -1, presencePenalty: 1, seed: 4294967295 },
    stop: ['END'],
    maxTokens: 16,
  });
  t.match(parseCompletionRequest(body), { stream: true, stream_options: { include_usage: true }, user: 'agent-7' });
});

const invalid: [string, unknown, string, RegExp][] = [
  ['prompt missing', { model: 'm' }, 'prompt', /a prompt is required/],
  ['several prompts', { model: 'm', prompt: ['a', 'b'] }, 'prompt', /more than one prompt per request is not supported/],
  ['a token array', { model: 'm', prompt: [1, 2, 3] }, 'prompt', /token ids is not supported/],
  ['token arrays', { model: 'm', prompt: [[1, 2]] }, 'prompt', /token ids is not supported/],
  ['a prompt of the wrong type', { model: 'm', prompt: 5 }, 'prompt', /expected a string/],
  ['n above 1', { model: 'm', prompt: 'x', n: 2 }, 'n', /only n = 1/],
  ['echo', { model: 'm', prompt: 'x', echo: true }, 'echo', /echo is not supported/],
  ['logprobs', { model: 'm', prompt: 'x', logprobs: 0 }, 'logprobs', /logprobs is not supported/],
  ['best_of above 1', { model: 'm', prompt: 'x', best_of: 2 }, 'best_of', /best_of > 1 is not supported/],
  ['suffix', { model: 'm', prompt: 'x', suffix: 'end' }, 'suffix', /suffix is not supported/],
  ['temperature above 2', { model: 'm', prompt: 'x', temperature: 3 }, 'temperature', /./],
  ['empty stop string', { model: 'm', prompt: 'x', stop: [''] }, 'stop.0', /must not be empty/],
];

t.test('what we do not implement, and invalid fields, are a 400 naming the field', async (t) => {
  for (const [name, body, param, message] of invalid) {
    t.throws(() => parseCompletionRequest(body), { code: 'ERR_BAD_REQUEST', param, message }, name);
  }
  t.throws(() => parseCompletionRequest({ model: 'm', prompt: 'x', echo: true }), { message: "Invalid 'echo': echo is not supported by this server" });
});

t.test('bodies and chunks are text_completion objects', async (t) => {
  const meta: CompletionMeta = { id: 'cmpl-abc', created: 1700000000, model: 'tiny' };
  const usage = { promptTokens: 5, completionTokens: 3, cachedTokens: 2 };
  const head = { id: 'cmpl-abc', object: 'text_completion', created: 1700000000, model: 'tiny' };
  t.strictSame(completionFormat.body(meta, 'Hi!', { type: 'done', requestId: 'r', finishReason: 'length', usage }), {
    ...head,
    choices: [{ text: 'Hi!', index: 0, logprobs: null, finish_reason: 'length' }],
    usage: { prompt_tokens: 5, completion_tokens: 3, total_tokens: 8, prompt_tokens_details: { cached_tokens: 2 } },
  });
  t.equal(completionFormat.opening, undefined, 'no role chunk, unlike chat');
  t.strictSame(completionFormat.text(meta, 'Hi'), { ...head, choices: [{ text: 'Hi', index: 0, logprobs: null, finish_reason: null }] });
  t.strictSame(completionFormat.finish(meta, 'stop'), { ...head, choices: [{ text: '', index: 0, logprobs: null, finish_reason: 'stop' }] });
  t.strictSame(completionFormat.usage(meta, usage), {
    ...head,
    choices: [],
    usage: { prompt_tokens: 5, completion_tokens: 3, total_tokens: 8, prompt_tokens_details: { cached_tokens: 2 } },
  });
});
