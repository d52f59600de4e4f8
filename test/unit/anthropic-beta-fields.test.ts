// What current clients send beyond the basics (issue 15): thinking, cache_control everywhere, the beta
// fields, the newer tool fields and thinking blocks echoed back. A body the real API takes parses here,
// the real API's refusals are 400s naming the field, and what is ignored changes nothing in the
// generate message.
import { readFileSync } from 'node:fs';
import t, { type Test } from 'tap';
import { chatMessages } from '../../worker/api/anthropic/content.js';
import { parseCountTokensRequest, parseMessagesRequest, promptTools, toGenerateMessage, toolUse } from '../../worker/api/anthropic/schema.js';
import { asksForCaching } from '../../worker/api/anthropic/request-fields.js';
import { reasoningOf } from '../../worker/api/anthropic/thinking.js';
import { fittedMaxTokens, sequenceCapacity } from '../../worker/api/anthropic/fit-context.js';
import { ErrorCode, SemanticError } from '../../shared/errors.js';
import type { GenerateInput } from '../../shared/protocol/messages.js';

const user = { role: 'user', content: 'hi' };
const minimal = { model: 'm', max_tokens: 2048, messages: [user] };
const fixture: Record<string, unknown> = JSON.parse(readFileSync(new URL('../fixtures/claude-code-messages-request.json', import.meta.url), 'utf8'));

function refused(t: Test, body: unknown, param: string, message: RegExp): void {
  try {
    chatMessages(parseMessagesRequest(body));
    t.fail(`expected a 400 for ${param}`);
  } catch (error) {
    t.ok(error instanceof SemanticError && error.code === ErrorCode.BadRequest, 'a 400');
    t.equal((error as SemanticError).param, param);
    t.match((error as SemanticError).message, message);
  }
}

const generateOf = (body: unknown) => {
  const request = parseMessagesRequest(body);
  return toGenerateMessage(request, chatMessages(request), 'r', 'a', toolUse(request, 'hermes'));
};

t.test("Claude Code's captured request parses whole: 12 tools, the deferred one left out of the prompt", async (t) => {
  const request = parseMessagesRequest(fixture);
  t.equal(request.tools?.length, 12);
  const names = promptTools(request).map((tool) => tool.name);
  t.equal(names.length, 11);
  t.notOk(names.includes('DeferredToolPlaceholder'), 'defer_loading: true is not rendered until a tool_reference loads it');
  t.strictSame(generateOf(fixture).reasoning, { enabled: true, budgetTokens: 31999 });
  t.ok(asksForCaching(request));
  const messages = chatMessages(request);
  t.strictSame(
    messages.map((m) => m.role),
    ['system', 'user', 'assistant', 'tool'],
  );
});

t.test('thinking: enabled is a budget, adaptive and between_tools unbounded, disabled and absent off; the rest of the message unchanged', async (t) => {
  const { reasoning, ...plain } = generateOf(minimal);
  t.strictSame(reasoning, { enabled: false }, 'no thinking field: off, as the real API answers without thinking');
  const cases: [unknown, unknown][] = [
    [
      { type: 'enabled', budget_tokens: 1024 },
      { enabled: true, budgetTokens: 1024 },
    ],
    [
      { type: 'enabled', budget_tokens: 2047, display: 'omitted' },
      { enabled: true, budgetTokens: 2047 },
    ],
    [{ type: 'adaptive' }, { enabled: true }],
    [{ type: 'adaptive', display: 'summarized' }, { enabled: true }],
    [{ type: 'disabled' }, { enabled: false }],
    [{ type: 'between_tools' }, { enabled: true }],
  ];
  for (const [thinking, expected] of cases) {
    const { reasoning: got, ...rest } = generateOf({ ...minimal, thinking });
    t.strictSame(got, expected, JSON.stringify(thinking));
    t.strictSame(rest, plain);
  }
  const tools = [{ name: 'f', input_schema: { type: 'object' } }];
  const forced = generateOf({ ...minimal, thinking: { type: 'adaptive' }, tools, tool_choice: { type: 'any' } });
  t.strictSame(forced.reasoning, { enabled: false }, 'a forced call is written with thinking off (its grammar shapes the whole output)');
  const free = generateOf({ ...minimal, thinking: { type: 'adaptive' }, tools });
  t.strictSame(free.reasoning, { enabled: true }, 'free to call: thinking stays on');
});

t.test("thinking: the real API's 400s — budget under 1024, budget not under max_tokens, unknown type, no budget", async (t) => {
  refused(t, { ...minimal, thinking: { type: 'enabled', budget_tokens: 1023 } }, 'thinking.budget_tokens', /greater than or equal to 1024/);
  refused(t, { ...minimal, thinking: { type: 'enabled', budget_tokens: 2048 } }, 'max_tokens', /`max_tokens` must be greater than `thinking.budget_tokens`/);
  refused(t, { ...minimal, thinking: { type: 'enabled' } }, 'thinking.budget_tokens', /Field required/);
  refused(t, { ...minimal, thinking: { type: 'sometimes' } }, 'thinking.type', /./);
});

t.test("thinking and redacted_thinking blocks echoed in assistant turns are accepted; the thinking is the turn's reasoning", async (t) => {
  const turns = [
    user,
    {
      role: 'assistant',
      content: [
        { type: 'thinking', thinking: 'Let me think.', signature: 'sig' },
        { type: 'redacted_thinking', data: 'opaque' },
        { type: 'text', text: 'Hello.' },
      ],
    },
    { role: 'user', content: 'again' },
  ];
  const request = parseMessagesRequest({ ...minimal, messages: turns });
  t.strictSame(chatMessages(request), [
    { role: 'user', content: 'hi' },
    { role: 'assistant', content: 'Hello.', reasoning: 'Let me think.' },
    { role: 'user', content: 'again' },
  ]);
  refused(
    t,
    { ...minimal, messages: [{ role: 'user', content: [{ type: 'thinking', thinking: 'x', signature: 's' }] }] },
    'messages.0.content.0.type',
    /not allowed in user turns/,
  );
});

t.test('cache_control on system, text, tool_use, tool_result, tool and top level is accepted and changes no prompt', async (t) => {
  const mark = { type: 'ephemeral', ttl: '1h' };
  const tool = { name: 'f', input_schema: { type: 'object' } };
  const marked = {
    ...minimal,
    cache_control: { type: 'ephemeral' },
    system: [{ type: 'text', text: 'sys', cache_control: mark }],
    tools: [{ ...tool, cache_control: mark }],
    messages: [
      { role: 'user', content: [{ type: 'text', text: 'hi', cache_control: mark }] },
      { role: 'assistant', content: [{ type: 'tool_use', id: 't1', name: 'f', input: {}, cache_control: mark }] },
      { role: 'user', content: [{ type: 'tool_result', tool_use_id: 't1', content: [{ type: 'text', text: 'ok', cache_control: mark }], cache_control: mark }] },
    ],
  };
  const plain = JSON.parse(JSON.stringify(marked, (key, value: unknown) => (key === 'cache_control' ? undefined : value)));
  t.strictSame(generateOf(marked), generateOf(plain));
  t.ok(asksForCaching(parseMessagesRequest(marked)));
  t.notOk(asksForCaching(parseMessagesRequest(plain)));
  const nested = { ...plain, messages: [plain.messages[0], plain.messages[1], marked.messages[2]] };
  nested.messages[2] = { role: 'user', content: [{ type: 'tool_result', tool_use_id: 't1', content: [{ type: 'text', text: 'ok', cache_control: mark }] }] };
  t.ok(asksForCaching(parseMessagesRequest(nested)), 'a mark inside a tool result counts');
  refused(t, { ...minimal, cache_control: { type: 'persistent' } }, 'cache_control.type', /./);
});

t.test('beta and newer top-level fields are accepted and ignored; mcp_servers with servers is refused', async (t) => {
  const plain = generateOf(minimal);
  const extras = {
    context_management: {
      edits: [
        { type: 'clear_thinking_20251015', keep: 'all' },
        { type: 'clear_tool_uses_20250919', trigger: { type: 'input_tokens', value: 1000 } },
      ],
    },
    container: 'container_1',
    mcp_servers: [],
    metadata: { user_id: '{"device_id":"x","session_id":"y"}' },
    service_tier: 'standard_only',
    speed: 'standard',
    inference_geo: 'us',
    output_config: { effort: 'high' },
    stop_sequences: ['END'],
    top_k: 5,
  };
  const generate = generateOf({ ...minimal, ...extras });
  t.strictSame(generate, { ...plain, sampling: { ...plain.sampling, topK: 5 }, stop: ['END'] });
  t.strictSame(generateOf({ ...minimal, container: { id: 'c', skills: [] } }), plain);
  refused(t, { ...minimal, mcp_servers: [{ type: 'url', name: 'x', url: 'https://example.invalid/mcp' }] }, 'mcp_servers', /MCP servers are not supported/);
  refused(t, { ...minimal, betas: ['x'] }, 'betas', /^betas: Extra inputs are not permitted$/);
  refused(t, { ...minimal, service_tier: 'priority' }, 'service_tier', /./);
});

t.test('output_config.format and output_format hold the answer to the schema by a grammar', async (t) => {
  const schema = { type: 'object', properties: { city: { type: 'string' } }, required: ['city'], additionalProperties: false };
  const viaConfig = generateOf({ ...minimal, output_config: { format: { type: 'json_schema', schema } } });
  const viaBeta = generateOf({ ...minimal, output_format: { type: 'json_schema', schema } });
  t.type(viaConfig.sampling.grammar, 'string');
  t.match(viaConfig.sampling.grammar, /city/);
  t.equal(viaBeta.sampling.grammar, viaConfig.sampling.grammar);
  const withTools = generateOf({ ...minimal, tools: [{ name: 'f', input_schema: { type: 'object' } }], output_config: { format: { type: 'json_schema', schema } } });
  t.equal(withTools.sampling.grammar, undefined, 'tools offered: the model stays free to call one');
});

t.test('the tool fields newer clients send are accepted; a tool_reference loads its deferred tool', async (t) => {
  const tools = [
    { name: 'f', input_schema: { type: 'object' }, strict: true, input_examples: [{ a: 1 }], eager_input_streaming: true, allowed_callers: ['direct'], type: 'custom' },
    { name: 'g', input_schema: { type: 'object' }, defer_loading: true },
  ];
  const first = parseMessagesRequest({ ...minimal, tools });
  t.strictSame(
    promptTools(first).map((tool) => tool.name),
    ['f'],
  );
  const messages = [
    user,
    { role: 'assistant', content: [{ type: 'tool_use', id: 't1', name: 'f', input: {} }] },
    { role: 'user', content: [{ type: 'tool_result', tool_use_id: 't1', content: [{ type: 'tool_reference', tool_name: 'g' }] }] },
  ];
  const loaded = parseMessagesRequest({ ...minimal, tools, messages });
  t.strictSame(
    promptTools(loaded).map((tool) => tool.name),
    ['f', 'g'],
  );
  t.equal(chatMessages(loaded)[2]?.content, '', 'a tool_reference has no text');
  t.strictSame(
    promptTools(parseCountTokensRequest({ model: 'm', tools, messages })).map((tool) => tool.name),
    ['f', 'g'],
    'count_tokens counts the same tools',
  );
});

t.test('max_tokens is held to what one sequence can still hold; the prompt is counted only when it could overflow', async (t) => {
  t.equal(sequenceCapacity({ engineContext: 2048, maxSequences: 4 }, true), 2048);
  t.equal(sequenceCapacity({ engineContext: 2048, maxSequences: 3 }, false), 672, '682 rounded down to whole blocks of 16');
  const input: GenerateInput = { kind: 'chat', messages: [{ role: 'user', content: 'hi' }] };
  let counts = 0;
  const engine = {
    countTokens: async (): Promise<number> => {
      counts++;
      return 500;
    },
  };
  t.equal(await fittedMaxTokens(engine, input, 16, 2048), 16);
  t.equal(counts, 0, 'a small request is not counted');
  t.equal(await fittedMaxTokens(engine, input, 32000, 2048), 1548, 'capped at the room the prompt leaves');
  t.equal(await fittedMaxTokens(engine, input, 1400, 2048), 1400, 'counted, and it fits');
  t.equal(counts, 2);
  t.equal(await fittedMaxTokens(engine, input, 32000, 400), 32000, 'no room at all: passed on for the engine to refuse');
});

t.test('system messages inside the conversation (Claude Code sends them) are rendered where they stand', async (t) => {
  const request = parseMessagesRequest({
    ...minimal,
    system: 'top',
    messages: [
      user,
      { role: 'system', content: 'Agent types: claude, Explore.' },
      { role: 'system', content: [{ type: 'text', text: 'Only until the next user turn.' }], clear_at: 'next_user_message' },
      { role: 'assistant', content: 'Hello.' },
      { role: 'user', content: 'again' },
      { role: 'system', content: 'Shown: no user turn after it.', clear_at: 'next_user_message', output_config: { effort: 'low' } },
    ],
  });
  t.strictSame(chatMessages(request), [
    { role: 'system', content: 'top' },
    { role: 'user', content: 'hi' },
    { role: 'system', content: 'Agent types: claude, Explore.' },
    { role: 'assistant', content: 'Hello.' },
    { role: 'user', content: 'again' },
    { role: 'system', content: 'Shown: no user turn after it.' },
  ]);
  refused(t, { ...minimal, messages: [{ role: 'developer', content: 'x' }] }, 'messages.0.role', /./);
});

t.test('a conversation of system messages without text is a 400, not a frame the engine refuses (the fuzzer found a hang)', async (t) => {
  const request = parseCountTokensRequest({ model: 'tiny', messages: [{ role: 'system' }] });
  t.throws(() => chatMessages(request), { message: 'messages: at least one message with content is required' });
});

t.test("Claude Code 2.1.197's main request (test/fixtures, its text replaced) parses whole: 24 tools, all in the prompt", async (t) => {
  const captured = JSON.parse(readFileSync(new URL('../fixtures/claude-code-2.1.197-messages-request.json', import.meta.url), 'utf8')) as {
    headers: Record<string, string>;
    body: unknown;
  };
  t.match(captured.headers['anthropic-beta'], /claude-code-20250219/);
  t.notOk('authorization' in captured.headers || 'x-api-key' in captured.headers, 'no credentials in the fixture');
  const request = parseMessagesRequest(captured.body);
  t.equal(promptTools(request).length, 24);
  t.strictSame(reasoningOf(request.thinking, false), { enabled: true, budgetTokens: 31999 });
  t.ok(asksForCaching(request), 'it marks cache_control');
});
