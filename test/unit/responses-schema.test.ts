// Responses API bodies: what the `openai` SDK sends is accepted (unknown-but-typed fields included),
// input items become the protocol's chat messages, tools and text.format take chat's grammar path,
// and bad input is a 400 naming the field at fault.
import t from 'tap';
import { SemanticError } from '../../shared/errors.js';
import { carriedReasoning } from '../../worker/api/responses/bodies.js';
import { appendInput, assistantTurn, promptMessages } from '../../worker/api/responses/conversation.js';
import { inputTokensSchema, parseResponsesBody, responseCreateSchema } from '../../worker/api/responses/schema.js';
import { responsesToolUse } from '../../worker/api/responses/tools.js';

const parse = (body: unknown) => parseResponsesBody(responseCreateSchema, body);

/** The 400 a body gets: its param and message. */
function refusal(body: unknown, schema: typeof responseCreateSchema | typeof inputTokensSchema = responseCreateSchema): { param: string | undefined; message: string } {
  try {
    parseResponsesBody(schema, body);
  } catch (error) {
    if (error instanceof SemanticError) return { param: error.param, message: error.message };
    throw error;
  }
  throw new Error('the body was accepted');
}

const weather = { type: 'function', name: 'get_weather', parameters: { type: 'object', properties: { unit: { type: 'string', enum: ['c', 'f'] } } }, strict: true };

t.test('a string input is one user message; instructions open the prompt but stay out of the history', async (t) => {
  const request = parse({ model: 'm', input: 'hi', instructions: 'be brief' });
  const history = appendInput([], request.input);
  t.strictSame(history, [{ role: 'user', content: 'hi' }]);
  t.strictSame(promptMessages(request.instructions, history), [
    { role: 'system', content: 'be brief' },
    { role: 'user', content: 'hi' },
  ]);
});

t.test('items: messages with or without type, calls of one turn together, outputs told their call, reasoning without text left out', async (t) => {
  const request = parse({
    model: 'm',
    input: [
      { role: 'developer', content: 'rules' },
      {
        type: 'message',
        role: 'user',
        content: [
          { type: 'input_text', text: 'a' },
          { type: 'input_text', text: 'b' },
        ],
      },
      { type: 'reasoning', id: 'rs_1', summary: [] },
      { type: 'message', id: 'msg_1', status: 'completed', role: 'assistant', content: [{ type: 'output_text', text: 'calling', annotations: [] }] },
      { type: 'function_call', id: 'fc_1', call_id: 'call_1', name: 'get_weather', arguments: '{"unit":"c"}', status: 'completed' },
      { type: 'function_call', call_id: 'call_2', name: 'get_time', arguments: '{}' },
      { type: 'function_call_output', call_id: 'call_2', output: 'noon' },
      { type: 'function_call_output', call_id: 'call_1', output: [{ type: 'input_text', text: '21' }] },
    ],
  });
  t.strictSame(appendInput([{ role: 'user', content: 'earlier' }], request.input), [
    { role: 'user', content: 'earlier' },
    { role: 'developer', content: 'rules' },
    { role: 'user', content: 'a\nb' },
    {
      role: 'assistant',
      content: 'calling',
      toolCalls: [
        { id: 'call_1', name: 'get_weather', arguments: '{"unit":"c"}' },
        { id: 'call_2', name: 'get_time', arguments: '{}' },
      ],
    },
    { role: 'tool', content: 'noon', toolCallId: 'call_2', name: 'get_time' },
    { role: 'tool', content: '21', toolCallId: 'call_1', name: 'get_weather' },
  ]);
});

t.test("reasoning items open their turn as its reasoning: content, or our encrypted_content; another server's is ignored", async (t) => {
  const call = { type: 'function_call', call_id: 'call_1', name: 'f', arguments: '{}' };
  const request = parse({
    model: 'm',
    input: [
      { role: 'user', content: 'q' },
      { type: 'reasoning', id: 'rs_1', summary: [{ type: 'summary_text', text: 'not this' }], content: [{ type: 'reasoning_text', text: 'think' }] },
      { type: 'message', role: 'assistant', content: 'a' },
      { role: 'user', content: 'q2' },
      { type: 'reasoning', id: 'rs_2', summary: [], content: [], encrypted_content: carriedReasoning('again') },
      call,
      { type: 'function_call_output', call_id: 'call_1', output: 'out' },
      { type: 'reasoning', id: 'rs_3', summary: [], encrypted_content: 'gAAAAB-openai-s-own' },
      { type: 'message', role: 'assistant', content: 'b' },
      { type: 'reasoning', id: 'rs_4', summary: [], content: [{ type: 'reasoning_text', text: 'dangling' }] },
    ],
  });
  t.strictSame(appendInput([], request.input), [
    { role: 'user', content: 'q' },
    { role: 'assistant', content: 'a', reasoning: 'think' },
    { role: 'user', content: 'q2' },
    { role: 'assistant', content: '', reasoning: 'again', toolCalls: [{ id: 'call_1', name: 'f', arguments: '{}' }] },
    { role: 'tool', content: 'out', toolCallId: 'call_1', name: 'f' },
    { role: 'assistant', content: 'b' },
  ]);
  t.equal(refusal({ model: 'm', input: 'hi', reasoning: { effort: 'extreme' } }).param, 'reasoning.effort');
  t.equal(refusal({ model: 'm', input: 'hi', reasoning: { summary: 'long' } }).param, 'reasoning.summary');
});

t.test("a response's output is the assistant turn the next prompt renders", async (t) => {
  t.strictSame(assistantTurn([{ type: 'reasoning', id: 'rs_1', summary: [], content: [{ type: 'reasoning_text', text: 'hm' }], status: 'completed' }]), {
    role: 'assistant',
    content: '',
    reasoning: 'hm',
  });
  const turn = assistantTurn([
    { type: 'message', id: 'msg_1', status: 'completed', role: 'assistant', content: [{ type: 'output_text', text: 'ok', annotations: [], logprobs: [] }] },
    { type: 'function_call', id: 'fc_1', call_id: 'call_1', name: 'f', arguments: '{}', status: 'completed' },
  ]);
  t.strictSame(turn, { role: 'assistant', content: 'ok', toolCalls: [{ id: 'call_1', name: 'f', arguments: '{}' }] });
});

t.test('every field the SDK types is accepted', async (t) => {
  const body = {
    model: 'm',
    input: 'hi',
    instructions: null,
    previous_response_id: null,
    store: true,
    stream: false,
    stream_options: { include_obfuscation: false },
    background: false,
    include: ['reasoning.encrypted_content'],
    truncation: 'auto',
    max_output_tokens: 10,
    max_tool_calls: 3,
    temperature: 0.5,
    top_p: 0.9,
    top_logprobs: 0,
    parallel_tool_calls: false,
    reasoning: { effort: 'low', summary: 'auto' },
    text: { format: { type: 'text' }, verbosity: 'low' },
    tools: [weather],
    tool_choice: { type: 'function', name: 'get_weather' },
    context_management: [{ type: 'compaction', compact_threshold: 1000 }],
    metadata: { k: 'v' },
    prompt_cache_key: 'k',
    prompt_cache_retention: '24h',
    safety_identifier: 's',
    service_tier: 'auto',
    user: 'someone@example.com',
  };
  t.doesNotThrow(() => parse(body));
  t.doesNotThrow(() => parseResponsesBody(inputTokensSchema, { model: 'm', input: 'hi', tools: [weather], tool_choice: 'auto', truncation: 'auto' }));
});

t.test('bad input is a 400 naming the field', async (t) => {
  t.same(refusal({ model: 'm', input: 'hi', frobnicate: 1 }), { param: 'frobnicate', message: 'Unrecognized request argument supplied: frobnicate' });
  t.equal(refusal({ model: 'm', input: 'hi', temperature: 3 }).param, 'temperature');
  t.equal(refusal({ model: 'm', input: 7 }).param, 'input');
  t.equal(refusal({ model: 'm', input: [{ role: 'user', content: [{ type: 'input_image', image_url: 'x' }] }] }).param, 'input.0.content.0');
  t.equal(refusal({ model: 'm', input: [{ type: 'item_reference', id: 'msg_1' }] }).param, 'input.0');
  t.equal(refusal({ model: 'm', input: [{ type: 'computer_call', id: 'c' }] }).param, 'input.0.type');
  t.equal(refusal({ model: 'm', input: [{ type: 'function_call', call_id: 'c', name: 'f' }] }).param, 'input.0.arguments');
  t.equal(refusal({ model: 'm', input: 'hi', tools: [{ type: 'web_search' }] }).param, 'tools.0.type');
  t.equal(refusal({ model: 'm', input: 'hi', tools: [{ ...weather, name: 'bad name' }] }).param, 'tools.0.name');
  t.equal(refusal({ model: 'm', input: 'hi', background: true }).param, 'background');
  t.equal(refusal({ model: 'm', input: 'hi', include: ['message.output_text.logprobs'] }).param, 'include');
  t.equal(refusal({ model: 'm', input: 'hi', text: { format: { type: 'json_schema', name: 'x' } } }).param, 'text.format.schema');
  t.equal(refusal({ model: 'm', input: 'hi', max_output_tokens: 0 }).param, 'max_output_tokens');
  t.equal(refusal({ model: 'm', input: 'hi', store: true }, inputTokensSchema).param, 'store', 'input_tokens takes only the conversation');
});

t.test("tools and text.format take chat's grammar path", async (t) => {
  const required = responsesToolUse(parse({ model: 'm', input: 'hi', tools: [weather], tool_choice: 'required' }), 'hermes');
  t.ok(required.grammar?.includes('get_weather'), 'a forced call in the model syntax');
  t.equal(required.parseFormat, 'hermes');
  t.strictSame(
    required.promptTools.map((tool) => tool.name),
    ['get_weather'],
  );
  const none = responsesToolUse(parse({ model: 'm', input: 'hi', tools: [weather], tool_choice: 'none' }), 'hermes');
  t.same([none.grammar, none.parseFormat, none.promptTools], [undefined, undefined, []]);
  const json = responsesToolUse(parse({ model: 'm', input: 'hi', text: { format: { type: 'json_schema', name: 'x', schema: { type: 'object' } } } }), 'hermes');
  t.ok(json.grammar?.includes('root'), 'the JSON schema grammar');
  const thrown = (body: unknown): unknown => {
    try {
      return responsesToolUse(parse(body), 'hermes');
    } catch (error) {
      return error;
    }
  };
  t.match(thrown({ model: 'm', input: 'hi', tools: [weather], tool_choice: { type: 'function', name: 'other' } }), { code: 'ERR_BAD_REQUEST', param: 'tool_choice' });
  t.match(thrown({ model: 'm', input: 'hi', tools: [weather], tool_choice: 'required', text: { format: { type: 'json_object' } } }), {
    code: 'ERR_BAD_REQUEST',
    param: 'text.format',
  });
});
