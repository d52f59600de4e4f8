// Chat completion bodies: valid ones map to the exact GenerateMessage (OpenAI's defaults filled in),
// invalid ones give a 400 naming the field at fault as `param`.
import t from 'tap';
import { parseChatCompletionRequest, toGenerateMessage } from '../../worker/http/openai-schema.js';

const user = { role: 'user', content: 'hi' };

function generateFor(body: unknown): unknown {
  return toGenerateMessage(parseChatCompletionRequest(body), 'req-1', 'agent-1');
}

t.test('a minimal body gets OpenAI defaults and no max tokens (the engine bounds it by the context)', async (t) => {
  t.strictSame(generateFor({ model: 'm', messages: [user] }), {
    type: 'generate',
    requestId: 'req-1',
    agentId: 'agent-1',
    input: { kind: 'chat', messages: [{ role: 'user', content: 'hi' }] },
    sampling: { temperature: 1, topP: 1, topK: 0, minP: 0, repeatPenalty: 1, frequencyPenalty: 0, presencePenalty: 0 },
    stop: [],
  });
});

t.test('every supported field maps; unknown fields are ignored', async (t) => {
  const body = {
    model: 'm',
    messages: [
      { role: 'system', content: 'be brief', name: 'ignored' },
      { role: 'developer', content: [{ type: 'text', text: 'one' }, { type: 'text', text: 'two' }] },
      { role: 'user', content: 'hi' },
      { role: 'assistant', content: null, tool_calls: [] },
      { role: 'tool', content: 'result', tool_call_id: 'c1' },
    ],
    max_tokens: 99,
    max_completion_tokens: 32,
    temperature: 0,
    top_p: 0.9,
    top_k: 40,
    min_p: 0.05,
    repeat_penalty: 1.1,
    seed: 42,
    stop: ['\n\n', 'END'],
    presence_penalty: -0.5,
    frequency_penalty: 2,
    n: 1,
    stream: true,
    stream_options: { include_usage: true },
    user: 'agent-7',
    logit_bias: { '50256': -100 },
    parallel_tool_calls: false,
  };
  t.strictSame(generateFor(body), {
    type: 'generate',
    requestId: 'req-1',
    agentId: 'agent-1',
    input: {
      kind: 'chat',
      messages: [
        { role: 'system', content: 'be brief' },
        { role: 'developer', content: 'one\ntwo' },
        { role: 'user', content: 'hi' },
        { role: 'assistant', content: '' },
        { role: 'tool', content: 'result' },
      ],
    },
    sampling: { temperature: 0, topP: 0.9, topK: 40, minP: 0.05, repeatPenalty: 1.1, frequencyPenalty: 2, presencePenalty: -0.5, seed: 42 },
    stop: ['\n\n', 'END'],
    maxTokens: 32,
  });
  const parsed = parseChatCompletionRequest(body);
  t.equal(parsed.stream, true);
  t.same(parsed.stream_options, { include_usage: true });
});

t.test('explicit nulls count as absent; a single stop string becomes a list', async (t) => {
  const message = toGenerateMessage(
    parseChatCompletionRequest({ model: 'm', messages: [user], temperature: null, max_tokens: 8, seed: null, stop: 'x', n: null, stream: null }),
    'r',
    'a',
  );
  t.equal(message.sampling.temperature, 1);
  t.equal(message.sampling.seed, undefined);
  t.equal(message.maxTokens, 8);
  t.same(message.stop, ['x']);
});

t.test('seeds map onto uint32 deterministically', async (t) => {
  const seedOf = (seed: number): number | undefined => toGenerateMessage(parseChatCompletionRequest({ model: 'm', messages: [user], seed }), 'r', 'a').sampling.seed;
  t.equal(seedOf(0), 0);
  t.equal(seedOf(4294967296 + 5), 5);
  t.equal(seedOf(-1), 4294967295);
});

const invalid: [string, unknown, string | undefined][] = [
  ['body not an object', [], undefined],
  ['model missing', { messages: [user] }, 'model'],
  ['messages empty', { model: 'm', messages: [] }, 'messages'],
  ['unknown role', { model: 'm', messages: [{ role: 'bot', content: 'x' }] }, 'messages.0.role'],
  ['role missing', { model: 'm', messages: [user, { content: 'x' }] }, 'messages.1.role'],
  ['null content for a user', { model: 'm', messages: [{ role: 'user', content: null }] }, 'messages.0.content'],
  ['non-text part', { model: 'm', messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'x' } }] }] }, 'messages.0.content.0.type'],
  ['part without text', { model: 'm', messages: [{ role: 'user', content: [{ type: 'text', text: 'a' }, { type: 'text' }] }] }, 'messages.0.content.1.text'],
  ['n above 1', { model: 'm', messages: [user], n: 2 }, 'n'],
  ['temperature above 2', { model: 'm', messages: [user], temperature: 2.5 }, 'temperature'],
  ['top_p of 0', { model: 'm', messages: [user], top_p: 0 }, 'top_p'],
  ['negative top_k', { model: 'm', messages: [user], top_k: -1 }, 'top_k'],
  ['fractional top_k', { model: 'm', messages: [user], top_k: 1.5 }, 'top_k'],
  ['min_p above 1', { model: 'm', messages: [user], min_p: 1.5 }, 'min_p'],
  ['max_tokens of 0', { model: 'm', messages: [user], max_tokens: 0 }, 'max_tokens'],
  ['fractional max_completion_tokens', { model: 'm', messages: [user], max_completion_tokens: 1.5 }, 'max_completion_tokens'],
  ['fractional seed', { model: 'm', messages: [user], seed: 1.5 }, 'seed'],
  ['presence_penalty below -2', { model: 'm', messages: [user], presence_penalty: -3 }, 'presence_penalty'],
  ['frequency_penalty above 2', { model: 'm', messages: [user], frequency_penalty: 3 }, 'frequency_penalty'],
  ['empty stop string', { model: 'm', messages: [user], stop: ['a', ''] }, 'stop.1'],
  ['too many stop strings', { model: 'm', messages: [user], stop: Array.from({ length: 17 }, (_, i) => `s${i}`) }, 'stop'],
  ['stop of the wrong type', { model: 'm', messages: [user], stop: 5 }, 'stop'],
  ['stream not a boolean', { model: 'm', messages: [user], stream: 'yes' }, 'stream'],
  ['include_usage not a boolean', { model: 'm', messages: [user], stream_options: { include_usage: 1 } }, 'stream_options.include_usage'],
  ['user not a string', { model: 'm', messages: [user], user: 5 }, 'user'],
];

t.test('invalid bodies are a 400 naming the field', async (t) => {
  for (const [name, body, param] of invalid) {
    t.throws(() => parseChatCompletionRequest(body), { code: 'ERR_BAD_REQUEST', param }, name);
  }
});

t.test('messages say what is wrong', async (t) => {
  t.throws(() => parseChatCompletionRequest({ model: 'm', messages: [user], n: 3 }), { message: "Invalid 'n': only n = 1 is supported" });
  t.throws(() => parseChatCompletionRequest({ model: 'm', messages: [{ role: 'user', content: 5 }] }), {
    message: "Invalid 'messages.0.content': expected a string or an array of text parts",
  });
  t.throws(() => parseChatCompletionRequest('text'), { message: /^The request body must be a JSON object/ });
});
