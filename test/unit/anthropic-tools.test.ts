// Anthropic tool use without a model: tools and tool_choice become the generate message's prompt tools
// and grammar, tool_use / tool_result blocks become the chat messages the template renders, invalid
// pairings are 400s naming the field, and recorded model outputs become the exact content blocks and
// stream events the real API sends.
import t, { type Test } from 'tap';
import { chatMessages } from '../../worker/api/anthropic/content.js';
import { chatInput, parseCountTokensRequest, parseMessagesRequest, promptTools, toGenerateMessage, toolUse } from '../../worker/api/anthropic/schema.js';
import { BlockStream, outputBlocks, type StreamEvent } from '../../worker/api/anthropic/blocks.js';
import { ErrorCode, SemanticError } from '../../shared/errors.js';

const weather = {
  name: 'get_weather',
  description: 'Weather in a city',
  input_schema: { type: 'object', properties: { city: { type: 'string', enum: ['Paris', 'Lima'] } }, required: ['city'] },
};
const clock = { name: 'get_time', input_schema: { type: 'object', properties: {} } };
const user = { role: 'user', content: 'Weather in Paris?' };
const base = { model: 'm', max_tokens: 64, messages: [user], tools: [weather, clock] };
const callTurn = {
  role: 'assistant',
  content: [
    { type: 'text', text: 'Let me check.' },
    { type: 'tool_use', id: 'toolu_1', name: 'get_weather', input: { city: 'Paris' } },
  ],
};
const resultTurn = { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_1', content: '18°C, sunny' }] };

function badParam(t: Test, body: unknown, param: string, message?: RegExp): void {
  try {
    chatMessages(parseMessagesRequest(body));
    t.fail(`expected a 400 for ${param}`);
  } catch (error) {
    t.ok(error instanceof SemanticError, 'a coded error');
    const e = error as SemanticError;
    t.equal(e.code, ErrorCode.BadRequest);
    t.equal(e.param, param, `names ${param}`);
    if (message !== undefined) t.match(e.message, message);
  }
}

t.test('tools go to the prompt as protocol tool definitions; tool_choice picks the grammar', async (t) => {
  const request = parseMessagesRequest(base);
  const generate = toGenerateMessage(request, chatMessages(request), 'r', 'a', toolUse(request, 'hermes'));
  t.strictSame(generate.input, {
    kind: 'chat',
    messages: [{ role: 'user', content: 'Weather in Paris?' }],
    tools: [
      { name: 'get_weather', description: 'Weather in a city', parameters: weather.input_schema },
      { name: 'get_time', parameters: { type: 'object', properties: {} } },
    ],
  });
  t.equal(generate.sampling.grammar, undefined, 'no tool_choice is auto: the model may answer in text');
  t.equal(toolUse(parseMessagesRequest({ ...base, tool_choice: { type: 'auto' } }), 'hermes').grammar, undefined);

  const named = toolUse(parseMessagesRequest({ ...base, tool_choice: { type: 'tool', name: 'get_weather' } }), 'hermes');
  t.match(named.grammar, /<tool_call>/, 'a named tool forces a call in the Hermes syntax');
  t.match(named.grammar, /get_weather/);
  t.notMatch(named.grammar, /get_time/, 'of that tool only');
  const any = toolUse(parseMessagesRequest({ ...base, tool_choice: { type: 'any' } }), 'hermes');
  t.match(any.grammar, /get_weather[\s\S]*get_time/, 'any: a call of any of the tools');
  t.equal(any.maxCalls, Infinity);
  t.equal(toolUse(parseMessagesRequest({ ...base, tool_choice: { type: 'any', disable_parallel_tool_use: true } }), 'hermes').maxCalls, 1);

  const none = toolUse(parseMessagesRequest({ ...base, tool_choice: { type: 'none' } }), 'hermes');
  t.strictSame(none, { promptTools: [], grammar: undefined, maxCalls: Infinity }, 'none: the model is told of no tools');
});

t.test('count_tokens renders the same tools as generation', async (t) => {
  const request = parseCountTokensRequest({ model: 'm', messages: [user], tools: [weather], tool_choice: { type: 'tool', name: 'get_weather' } });
  t.strictSame(chatInput(chatMessages(request), { promptTools: promptTools(request) }), {
    kind: 'chat',
    messages: [{ role: 'user', content: 'Weather in Paris?' }],
    tools: [{ name: 'get_weather', description: 'Weather in a city', parameters: weather.input_schema }],
  });
  const hidden = parseCountTokensRequest({ model: 'm', messages: [user], tools: [weather], tool_choice: { type: 'none' } });
  t.strictSame(chatInput(chatMessages(hidden), { promptTools: promptTools(hidden) }), { kind: 'chat', messages: [{ role: 'user', content: 'Weather in Paris?' }] });
});

t.test("tool_use blocks become the assistant turn's calls, tool_result blocks tool messages", async (t) => {
  const request = parseMessagesRequest({
    ...base,
    system: 'Use tools.',
    messages: [
      user,
      callTurn,
      {
        role: 'user',
        content: [
          {
            type: 'tool_result',
            tool_use_id: 'toolu_1',
            content: [
              { type: 'text', text: '18°C' },
              { type: 'text', text: 'sunny' },
            ],
          },
          { type: 'text', text: 'And tomorrow?' },
        ],
      },
      {
        role: 'assistant',
        content: [
          { type: 'tool_use', id: 'toolu_2', name: 'get_weather', input: { city: 'Paris' } },
          { type: 'tool_use', id: 'toolu_3', name: 'get_time', input: {} },
        ],
      },
      { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_3', content: '09:00' }] },
      {
        role: 'user',
        content: [
          { type: 'tool_result', tool_use_id: 'toolu_2', is_error: true, content: 'no forecast' },
          { type: 'tool_result', tool_use_id: 'toolu_2' },
        ],
      },
    ],
  });
  t.strictSame(
    chatMessages(request),
    [
      { role: 'system', content: 'Use tools.' },
      { role: 'user', content: 'Weather in Paris?' },
      { role: 'assistant', content: 'Let me check.', toolCalls: [{ id: 'toolu_1', name: 'get_weather', arguments: '{"city":"Paris"}' }] },
      { role: 'tool', content: '18°C\nsunny', toolCallId: 'toolu_1', name: 'get_weather' },
      { role: 'user', content: 'And tomorrow?' },
      {
        role: 'assistant',
        content: '',
        toolCalls: [
          { id: 'toolu_2', name: 'get_weather', arguments: '{"city":"Paris"}' },
          { id: 'toolu_3', name: 'get_time', arguments: '{}' },
        ],
      },
      { role: 'tool', content: '09:00', toolCallId: 'toolu_3', name: 'get_time' },
      { role: 'tool', content: 'Error: no forecast', toolCallId: 'toolu_2', name: 'get_weather' },
      { role: 'tool', content: '', toolCallId: 'toolu_2', name: 'get_weather' },
    ],
    'consecutive user turns merge before pairing, results first, is_error told to the model',
  );
});

t.test('tools and tool_choice are checked, naming the field', async (t) => {
  badParam(t, { ...base, tools: [{ name: 'f' }] }, 'tools.0.input_schema', /^tools\.0\.input_schema: Field required$/);
  badParam(t, { ...base, tools: [{ name: 'f', input_schema: { type: 'string' } }] }, 'tools.0.input_schema.type', /object/);
  badParam(t, { ...base, tools: [{ name: 'get weather!', input_schema: { type: 'object' } }] }, 'tools.0.name', /\^\[a-zA-Z0-9_-\]\{1,64\}\$/);
  badParam(t, { ...base, tools: [{ name: 'x'.repeat(65), input_schema: { type: 'object' } }] }, 'tools.0.name');
  badParam(t, { ...base, tools: [weather, weather] }, 'tools.1.name', /unique/);
  badParam(t, { ...base, tools: [{ type: 'web_search_20250305', name: 'web_search' }] }, 'tools.0.type', /server tools \('web_search_20250305'\) are not supported/);
  badParam(t, { ...base, tool_choice: { type: 'tool', name: 'get_stock' } }, 'tool_choice.name', /'get_stock' is not among the request's tools/);
  badParam(t, { ...base, tools: undefined, tool_choice: { type: 'tool', name: 'get_weather' } }, 'tool_choice.name');
  badParam(t, { ...base, tools: [], tool_choice: { type: 'any' } }, 'tool_choice.type', /at least one tool/);
  badParam(t, { ...base, tool_choice: { type: 'sometimes' } }, 'tool_choice.type');
  badParam(t, { ...base, tool_choice: { type: 'none', disable_parallel_tool_use: true } }, 'tool_choice.disable_parallel_tool_use', /Extra inputs/);
});

t.test('tool_use and tool_result blocks are checked and must pair up', async (t) => {
  const noId = { role: 'user', content: [{ type: 'tool_result', content: 'x' }] };
  badParam(t, { ...base, messages: [user, callTurn, noId] }, 'messages.2.content.0.tool_use_id', /^messages\.2\.content\.0\.tool_use_id: Field required$/);
  const useInUser = { role: 'user', content: [{ type: 'tool_use', id: 'toolu_9', name: 'get_weather', input: {} }] };
  badParam(t, { ...base, messages: [useInUser] }, 'messages.0.content.0.type', /'tool_use' blocks are not allowed in user turns/);
  const resultInAssistant = { role: 'assistant', content: [{ type: 'tool_result', tool_use_id: 'toolu_1', content: 'x' }] };
  badParam(t, { ...base, messages: [user, resultInAssistant, user] }, 'messages.1.content.0.type', /not allowed in assistant turns/);
  badParam(t, { ...base, messages: [user, callTurn, user] }, 'messages.2', /tool_use ids were found without tool_result blocks immediately after: toolu_1/);
  badParam(t, { ...base, messages: [resultTurn] }, 'messages.0.content.0.tool_use_id', /unexpected tool_use_id found in tool_result blocks: toolu_1/);
  const wrongId = {
    role: 'user',
    content: [
      { type: 'tool_result', tool_use_id: 'toolu_1', content: 'a' },
      { type: 'tool_result', tool_use_id: 'toolu_7', content: 'b' },
    ],
  };
  badParam(t, { ...base, messages: [user, callTurn, wrongId] }, 'messages.2.content.1.tool_use_id', /toolu_7/);
  badParam(
    t,
    { ...base, messages: [user, { ...callTurn, content: [{ type: 'tool_use', id: 'toolu_1', name: 'f', input: 'x' }] }, resultTurn] },
    'messages.1.content.0.input',
    /expected an object/,
  );
  badParam(t, { ...base, messages: [user, callTurn] }, 'messages.1.role', /prefill/);
  const image = { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_1', content: [{ type: 'image', source: {} }] }] };
  badParam(t, { ...base, messages: [user, callTurn, image] }, 'messages.2.content.0.content.0.type');
  badParam(t, { ...base, system: [{ type: 'tool_use', id: 'toolu_1', name: 'f', input: {} }] }, 'system.0.type', /only 'text'/);
});

// Recorded outputs of a Qwen-family (Hermes syntax) model.
const call = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>';
const hermes = { format: 'hermes' as const, maxCalls: Infinity };
const idless = (blocks: unknown[]): unknown[] => blocks.map((b) => ({ ...(b as object), ...((b as { id?: string }).id === undefined ? {} : { id: 'toolu_x' }) }));

t.test('JSON content: text and tool_use blocks from a recorded output', async (t) => {
  const blocks = outputBlocks(`I will check.\n${call}\n${call.replace('Paris', 'Lima')}`, hermes);
  t.match(blocks[1], { type: 'tool_use', id: /^toolu_[0-9a-f]{24}$/ });
  t.not((blocks[1] as { id: string }).id, (blocks[2] as { id: string }).id, 'each call its own id');
  t.strictSame(idless(blocks), [
    { type: 'text', text: 'I will check.' },
    { type: 'tool_use', id: 'toolu_x', name: 'get_weather', input: { city: 'Paris' } },
    { type: 'tool_use', id: 'toolu_x', name: 'get_weather', input: { city: 'Lima' } },
  ]);
  t.strictSame(idless(outputBlocks(call, hermes)), [{ type: 'tool_use', id: 'toolu_x', name: 'get_weather', input: { city: 'Paris' } }], 'no empty text block beside a call');
  t.strictSame(idless(outputBlocks(`${call}${call}`, { format: 'hermes', maxCalls: 1 })).length, 1, 'disable_parallel_tool_use keeps the first call');
  t.strictSame(
    outputBlocks('<tool_call>\n{"name": oops}\n</tool_call>', hermes),
    [{ type: 'text', text: '<tool_call>\n{"name": oops}\n</tool_call>' }],
    'malformed syntax stays text',
  );
  t.strictSame(outputBlocks('', hermes), [{ type: 'text', text: '' }]);
  t.strictSame(
    idless(outputBlocks(`${call}\nDone.`, hermes)),
    [
      { type: 'tool_use', id: 'toolu_x', name: 'get_weather', input: { city: 'Paris' } },
      { type: 'text', text: 'Done.' },
    ],
    "text written after a call is its own block after it, in the model's order",
  );
  t.strictSame(outputBlocks(call, undefined), [{ type: 'text', text: call }], 'no tools offered: nothing is parsed');
});

function streamed(deltas: string[], parsing: typeof hermes | undefined): StreamEvent[] {
  const events: StreamEvent[] = [];
  const blocks = new BlockStream((event) => events.push(event), parsing);
  blocks.start();
  for (const delta of deltas) blocks.push(delta);
  events.push({ type: 'calls', count: blocks.finish() });
  return events.map((e) =>
    e.type === 'content_block_start' && (e.content_block as { id?: string }).id !== undefined ? { ...e, content_block: { ...(e.content_block as object), id: 'toolu_x' } } : e,
  );
}

/** The output cut into small deltas, as tokens arrive. */
const pieces = (text: string): string[] => text.match(/[\s\S]{1,3}/g) ?? [];

t.test('stream events: text block (ping after its start, as the real API), then one tool_use block per call with its input as input_json_delta', async (t) => {
  const events = streamed(pieces(`Sure.\n${call}`), hermes);
  const textDeltas = events.filter((e) => e.type === 'content_block_delta' && e.index === 0);
  t.equal(textDeltas.map((e) => (e.delta as { text: string }).text).join(''), 'Sure.');
  t.strictSame(
    events.filter((e) => !textDeltas.includes(e)),
    [
      { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } },
      { type: 'ping' },
      { type: 'content_block_stop', index: 0 },
      { type: 'content_block_start', index: 1, content_block: { type: 'tool_use', id: 'toolu_x', name: 'get_weather', input: {} } },
      { type: 'content_block_delta', index: 1, delta: { type: 'input_json_delta', partial_json: '{"city":"Paris"}' } },
      { type: 'content_block_stop', index: 1 },
      { type: 'calls', count: 1 },
    ],
  );
  t.strictSame(
    streamed(pieces(`\n${call}\n`), hermes),
    [
      { type: 'content_block_start', index: 0, content_block: { type: 'tool_use', id: 'toolu_x', name: 'get_weather', input: {} } },
      { type: 'ping' },
      { type: 'content_block_delta', index: 0, delta: { type: 'input_json_delta', partial_json: '{"city":"Paris"}' } },
      { type: 'content_block_stop', index: 0 },
      { type: 'calls', count: 1 },
    ],
    'a call alone: its block is the first, whitespace around it is no text',
  );
  t.equal(streamed(pieces(`${call}${call}`), { format: 'hermes', maxCalls: 1 }).at(-1)?.count, 1, 'disable_parallel_tool_use');
});

t.test('stream events without calls: one text block, opened at once when no tools were offered', async (t) => {
  t.strictSame(
    streamed([], hermes),
    [{ type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } }, { type: 'ping' }, { type: 'content_block_stop', index: 0 }, { type: 'calls', count: 0 }],
    'an empty output is still one (empty) text block, as in JSON',
  );
  t.strictSame(streamed(['<tool', '_call>'], undefined), [
    { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } },
    { type: 'ping' },
    { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: '<tool' } },
    { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: '_call>' } },
    { type: 'content_block_stop', index: 0 },
    { type: 'calls', count: 0 },
  ]);
  const withheld = streamed(['Hi <tool', '_cal'], hermes);
  t.equal(
    withheld
      .filter((e) => e.type === 'content_block_delta')
      .map((e) => (e.delta as { text: string }).text)
      .join(''),
    'Hi <tool_cal',
    'what could open a call is shown once ruled out',
  );
});

t.test('a streamed output accumulates to the JSON content', async (t) => {
  for (const output of [`Sure.\n${call}`, call, 'plain text', `${call}\n${call}`, '', `${call}\nDone.`, `A ${call} B ${call} C`]) {
    const events = streamed(pieces(output), hermes);
    const content: Record<string, unknown>[] = [];
    for (const e of events) {
      if (e.type === 'content_block_start') content[e.index as number] = { ...(e.content_block as object) };
      if (e.type !== 'content_block_delta') continue;
      const block = content[e.index as number] as { text: string; input: unknown; json?: string };
      const delta = e.delta as { type: string; text?: string; partial_json?: string };
      if (delta.type === 'text_delta') block.text += delta.text;
      else block.input = JSON.parse(delta.partial_json as string);
    }
    t.strictSame(content, idless(outputBlocks(output, hermes)), JSON.stringify(output));
  }
});
