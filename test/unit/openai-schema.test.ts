// Chat completion bodies: valid ones map to the exact GenerateMessage (OpenAI's defaults filled in),
// invalid ones give a 400 naming the field at fault as `param`.
import t from 'tap';
import { parseChatCompletionRequest, toChatGeneration, toGenerateMessage } from '../../worker/api/openai/schema.js';

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

t.test('every supported field maps; documented fields we need not act on are accepted', async (t) => {
  const body = {
    model: 'm',
    messages: [
      { role: 'system', content: 'be brief', name: 'ignored' },
      {
        role: 'developer',
        content: [
          { type: 'text', text: 'one' },
          { type: 'text', text: 'two' },
        ],
      },
      { role: 'user', content: 'hi' },
      { role: 'assistant', content: null, reasoning_content: 'Look it up.', tool_calls: [{ id: 'c1', type: 'function', function: { name: 'lookup', arguments: '{"q":1}' } }] },
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
    logit_bias: {},
    parallel_tool_calls: false,
    logprobs: false,
    top_logprobs: 0,
    store: false,
    metadata: { team: 'a' },
    service_tier: 'auto',
    reasoning_effort: 'low',
    modalities: ['text'],
    prediction: { type: 'content', content: 'x' },
    audio: null,
    response_format: { type: 'text' },
    tool_choice: 'none',
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
        { role: 'assistant', content: '', reasoning: 'Look it up.', toolCalls: [{ id: 'c1', name: 'lookup', arguments: '{"q":1}' }] },
        { role: 'tool', content: 'result', toolCallId: 'c1', name: 'lookup' },
      ],
    },
    sampling: { temperature: 0, topP: 0.9, topK: 40, minP: 0.05, repeatPenalty: 1.1, frequencyPenalty: 2, presencePenalty: -0.5, seed: 42 },
    stop: ['\n\n', 'END'],
    maxTokens: 32,
    reasoning: { enabled: true, budgetTokens: 1024 },
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
  ['unknown field', { model: 'm', messages: [user], frobnicate: true }, 'frobnicate'],
  ['logprobs true', { model: 'm', messages: [user], logprobs: true }, 'logprobs'],
  ['non-empty logit_bias', { model: 'm', messages: [user], logit_bias: { '50256': -100 } }, 'logit_bias'],
  ['audio output', { model: 'm', messages: [user], modalities: ['text', 'audio'] }, 'modalities.1'],
  ['deprecated functions', { model: 'm', messages: [user], functions: [{ name: 'f' }] }, 'functions'],
  ['tool message without tool_call_id', { model: 'm', messages: [user, { role: 'tool', content: 'r' }] }, 'messages.1.tool_call_id'],
  ['tool name with a space', { model: 'm', messages: [user], tools: [{ type: 'function', function: { name: 'get weather' } }] }, 'tools.0.function.name'],
  ['tool of another type', { model: 'm', messages: [user], tools: [{ type: 'web_search', function: { name: 'f' } }] }, 'tools.0.type'],
  ['tool_choice of the wrong shape', { model: 'm', messages: [user], tool_choice: 'always' }, 'tool_choice'],
  ['response_format of an unknown type', { model: 'm', messages: [user], response_format: { type: 'xml' } }, 'response_format.type'],
  ['json_schema without a name', { model: 'm', messages: [user], response_format: { type: 'json_schema', json_schema: { schema: {} } } }, 'response_format.json_schema.name'],
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

t.test("an unknown field is refused in OpenAI's words", async (t) => {
  t.throws(() => parseChatCompletionRequest({ model: 'm', messages: [user], frobnicate: 1 }), {
    message: 'Unrecognized request argument supplied: frobnicate',
    param: 'frobnicate',
  });
  t.throws(() => parseChatCompletionRequest({ model: 'm', messages: [user], logprobs: true }), { message: "Invalid 'logprobs': logprobs is not supported by this server" });
});

const weatherTool = {
  type: 'function',
  function: { name: 'get_weather', description: 'Weather now', parameters: { type: 'object', properties: { unit: { enum: ['celsius', 'fahrenheit'] } } }, strict: true },
};
const toolMessage = (body: Record<string, unknown>, format: 'hermes' | 'llama3' = 'hermes') =>
  toChatGeneration(parseChatCompletionRequest({ model: 'm', messages: [user], ...body }), 'r', 'a', format);

t.test('tools reach the prompt; auto leaves sampling free and reads calls from the output', async (t) => {
  const { message, tools } = toolMessage({ tools: [weatherTool] });
  t.same(message.input, {
    kind: 'chat',
    messages: [{ role: 'user', content: 'hi' }],
    tools: [{ name: 'get_weather', description: 'Weather now', parameters: weatherTool.function.parameters }],
  });
  t.equal(message.sampling.grammar, undefined);
  t.equal(tools.parseFormat, 'hermes');
});

t.test('tool_choice none hides the tools and reads no calls', async (t) => {
  const { message, tools } = toolMessage({ tools: [weatherTool], tool_choice: 'none' });
  t.same(message.input, { kind: 'chat', messages: [{ role: 'user', content: 'hi' }] });
  t.equal(tools.parseFormat, undefined);
});

t.test("a named or required tool_choice forces a call in the model's syntax", async (t) => {
  const named = toolMessage({ tools: [weatherTool], tool_choice: { type: 'function', function: { name: 'get_weather' } } }, 'llama3');
  t.match(named.message.sampling.grammar, /^root ::= \("\{\\"name\\": \\"get_weather\\", \\"parameters\\": "/);
  t.equal(named.tools.parseFormat, 'llama3');
  t.match(toolMessage({ tools: [weatherTool], tool_choice: 'required' }).message.sampling.grammar, /<tool_call>/);
});

t.test('tool_choice and response_format are checked against the request', async (t) => {
  const bad = (body: Record<string, unknown>) => () => toolMessage(body);
  t.throws(bad({ tools: [weatherTool], tool_choice: { type: 'function', function: { name: 'other' } } }), {
    param: 'tool_choice',
    message: "Invalid 'tool_choice': the function 'other' is not among the request's tools.",
  });
  t.throws(bad({ tool_choice: 'required' }), { param: 'tool_choice', message: /^Invalid 'tool_choice'/ });
  t.throws(bad({ tools: [weatherTool], tool_choice: 'required', response_format: { type: 'json_object' } }), { param: 'response_format', message: /^Invalid 'response_format'/ });
});

t.test('response_format json_object and json_schema set a JSON grammar', async (t) => {
  t.match(toolMessage({ response_format: { type: 'json_object' } }).message.sampling.grammar, /^root ::= object\n/);
  const schema = toolMessage({ response_format: { type: 'json_schema', json_schema: { name: 'pick', schema: { enum: ['a', 'b'] }, strict: true } } });
  t.match(schema.message.sampling.grammar, /"\\"a\\""/);
  t.equal(schema.tools.parseFormat, undefined, 'no tools, no call parsing');
  t.equal(toolMessage({ response_format: { type: 'text' } }).message.sampling.grammar, undefined);
});

t.test('reasoning_effort: none turns thinking off, the others are budgets; a grammar turns thinking off', async (t) => {
  const withEffort = (reasoning_effort: unknown, extra: object = {}) =>
    toGenerateMessage(parseChatCompletionRequest({ model: 'm', messages: [user], reasoning_effort, ...extra }), 'r', 'a').reasoning;
  t.equal(withEffort(undefined), undefined, 'no effort: the template default, unbounded');
  t.equal(withEffort(null), undefined);
  t.same(withEffort('none'), { enabled: false });
  t.same(
    ['minimal', 'low', 'medium', 'high', 'xhigh'].map((effort) => withEffort(effort)?.budgetTokens),
    [256, 1024, 4096, 16384, 32768],
  );
  t.same(withEffort('high', { response_format: { type: 'json_object' } }), { enabled: false }, 'JSON mode');
  t.throws(() => parseChatCompletionRequest({ model: 'm', messages: [user], reasoning_effort: 'max' }), { code: 'ERR_BAD_REQUEST', param: 'reasoning_effort' });
});
