// Anthropic Messages bodies: valid ones map to the exact chat messages and GenerateMessage, invalid or
// unsupported ones give a 400 naming the field at fault; usage and stop reasons map as documented.
import t, { type Test } from 'tap';
import { chatMessages } from '../../worker/api/anthropic/content.js';
import { type CountTokensRequest, parseCountTokensRequest, parseMessagesRequest, toGenerateMessage, toolUse } from '../../worker/api/anthropic/schema.js';
import { anthropicErrorBody, messageBody, messageStart, toAnthropicUsage } from '../../worker/api/anthropic/bodies.js';
import { ErrorCode, SemanticError } from '../../shared/errors.js';
import { resolveAgentId } from '../../shared/agent-id.js';

const user = { role: 'user', content: 'hi' };
const minimal = { model: 'm', max_tokens: 8, messages: [user] };

function badParam(t: Test, body: unknown, param: string, message?: RegExp, parse: (body: unknown) => CountTokensRequest = parseMessagesRequest): void {
  try {
    chatMessages(parse(body));
    t.fail(`expected a 400 for ${param}`);
  } catch (error) {
    t.ok(error instanceof SemanticError, 'a coded error');
    const e = error as SemanticError;
    t.equal(e.code, ErrorCode.BadRequest);
    t.equal(e.param, param);
    if (message !== undefined) t.match(e.message, message);
  }
}

t.test('a minimal body maps to a chat generate with Anthropic defaults and its max_tokens', async (t) => {
  const request = parseMessagesRequest(minimal);
  t.strictSame(toGenerateMessage(request, chatMessages(request), 'req-1', 'agent-1', toolUse(request, 'hermes')), {
    type: 'generate',
    requestId: 'req-1',
    agentId: 'agent-1',
    input: { kind: 'chat', messages: [{ role: 'user', content: 'hi' }] },
    sampling: { temperature: 1, topP: 1, topK: 0, minP: 0, repeatPenalty: 1, frequencyPenalty: 0, presencePenalty: 0 },
    maxTokens: 8,
    stop: [],
    reasoning: { enabled: false },
  });
});

t.test('every supported field maps; system and text blocks become chat messages', async (t) => {
  const request = parseMessagesRequest({
    model: 'm',
    max_tokens: 5,
    system: [
      { type: 'text', text: 'be brief', cache_control: { type: 'ephemeral' } },
      { type: 'text', text: 'be kind' },
    ],
    messages: [
      {
        role: 'user',
        content: [
          { type: 'text', text: 'one' },
          { type: 'text', text: 'two' },
        ],
      },
      { role: 'assistant', content: 'ok' },
      { role: 'user', content: 'three' },
      { role: 'user', content: 'four' },
    ],
    stop_sequences: ['\n\n', 'END'],
    temperature: 0,
    top_p: 0.9,
    top_k: 40,
    metadata: { user_id: 'alice' },
    stream: true,
    service_tier: 'auto',
    thinking: { type: 'disabled' },
    tools: [],
  });
  const messages = chatMessages(request);
  t.strictSame(messages, [
    { role: 'system', content: 'be brief\nbe kind' },
    { role: 'user', content: 'one\ntwo' },
    { role: 'assistant', content: 'ok' },
    { role: 'user', content: 'three\nfour' },
  ]);
  const generate = toGenerateMessage(request, messages, 'r', 'a', toolUse(request, 'hermes'));
  t.strictSame(generate.input, { kind: 'chat', messages }, 'an empty tools list tells the model of no tools');
  t.strictSame(generate.sampling, { temperature: 0, topP: 0.9, topK: 40, minP: 0, repeatPenalty: 1, frequencyPenalty: 0, presencePenalty: 0 });
  t.strictSame(generate.stop, ['\n\n', 'END']);
  t.equal(request.metadata?.user_id, 'alice');
});

t.test('max_tokens is required and must be a positive integer', async (t) => {
  badParam(t, { model: 'm', messages: [user] }, 'max_tokens', /^max_tokens: Field required$/);
  badParam(t, { ...minimal, max_tokens: 0 }, 'max_tokens');
  badParam(t, { ...minimal, max_tokens: 1.5 }, 'max_tokens');
  badParam(t, { ...minimal, max_tokens: '8' }, 'max_tokens', /expected an integer/);
});

t.test('fields are checked strictly, unknown top-level fields are refused as the real API does', async (t) => {
  badParam(t, { ...minimal, frequency_penalty: 1 }, 'frequency_penalty', /^frequency_penalty: Extra inputs are not permitted$/);
  badParam(t, { ...minimal, metadata: { user_id: 'a', other: 1 } }, 'metadata.other');
  badParam(t, { ...minimal, temperature: 1.5 }, 'temperature');
  badParam(t, { ...minimal, top_k: -1 }, 'top_k');
  badParam(t, { ...minimal, messages: [] }, 'messages');
  badParam(t, { ...minimal, messages: [{ role: 'developer', content: 'x' }] }, 'messages.0.role');
  badParam(t, { ...minimal, messages: [{ role: 'user', content: 3 }] }, 'messages.0.content');
  badParam(t, { ...minimal, stop_sequences: [''] }, 'stop_sequences.0');
  badParam(t, { ...minimal, system: 7 }, 'system');
});

t.test('non-text blocks and prefill are refused as not supported yet', async (t) => {
  const image = { role: 'user', content: [{ type: 'image', source: {} }] };
  badParam(t, { ...minimal, messages: [image] }, 'messages.0.content.0.type', /'image' content blocks are not supported/);
  badParam(t, { ...minimal, messages: [user, { role: 'assistant', content: 'The answer is' }] }, 'messages.1.role', /prefill/);
});

t.test('count_tokens takes the conversation fields only', async (t) => {
  const request = parseCountTokensRequest({ model: 'm', system: 'sys', messages: [user] });
  t.strictSame(chatMessages(request), [
    { role: 'system', content: 'sys' },
    { role: 'user', content: 'hi' },
  ]);
  badParam(t, { ...minimal }, 'max_tokens', /Extra inputs/, parseCountTokensRequest);
});

t.test('usage: input_tokens excludes cache reads, so input + cache_read = the whole prompt', async (t) => {
  t.strictSame(toAnthropicUsage({ promptTokens: 100, cachedTokens: 60, completionTokens: 7 }), {
    input_tokens: 40,
    output_tokens: 7,
    cache_creation_input_tokens: 0,
    cache_read_input_tokens: 60,
  });
});

t.test('usage with cache_control: the computed prompt tokens are a cache write, input_tokens 0, the sum still the whole prompt', async (t) => {
  t.strictSame(toAnthropicUsage({ promptTokens: 100, cachedTokens: 60, completionTokens: 7 }, true), {
    input_tokens: 0,
    output_tokens: 7,
    cache_creation_input_tokens: 40,
    cache_read_input_tokens: 60,
  });
});

t.test('bodies: message, message_start and the error shape', async (t) => {
  const meta = { id: 'msg_1', model: 'tiny', caching: false };
  const done = { type: 'done' as const, requestId: 'r', finishReason: 'length' as const, usage: { promptTokens: 10, cachedTokens: 0, completionTokens: 3 } };
  t.strictSame(messageBody(meta, [{ type: 'text', text: 'abc' }], done), {
    id: 'msg_1',
    type: 'message',
    role: 'assistant',
    model: 'tiny',
    content: [{ type: 'text', text: 'abc' }],
    stop_reason: 'max_tokens',
    stop_sequence: null,
    usage: { input_tokens: 10, output_tokens: 3, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 },
  });
  t.match(messageBody(meta, [{ type: 'text', text: '' }], { ...done, finishReason: 'stop' }), { stop_reason: 'end_turn' });
  const call = { type: 'tool_use' as const, id: 'toolu_1', name: 'f', input: {} };
  t.match(messageBody(meta, [call], done), { content: [call], stop_reason: 'tool_use', stop_sequence: null }, 'a call ends the message in tool_use');
  const start = messageStart(meta, { type: 'started', requestId: 'r', promptTokens: 10, cachedTokens: 4, cacheTier: 'hot' });
  t.strictSame(start, {
    type: 'message_start',
    message: {
      id: 'msg_1',
      type: 'message',
      role: 'assistant',
      model: 'tiny',
      content: [],
      stop_reason: null,
      stop_sequence: null,
      usage: { input_tokens: 6, output_tokens: 0, cache_creation_input_tokens: 0, cache_read_input_tokens: 4 },
    },
  });
  t.strictSame(anthropicErrorBody({ code: ErrorCode.ModelNotFound, message: 'no' }), { type: 'error', error: { type: 'not_found_error', message: 'no' } });
  t.strictSame(anthropicErrorBody({ code: ErrorCode.QueueFull, message: 'full' }), { type: 'error', error: { type: 'rate_limit_error', message: 'full' } });
});

t.test('metadata.user_id names the agent; any string the real API allows works, headers still win', async (t) => {
  const field = (value: string) => ({ value, param: 'metadata.user_id', opaque: true });
  const none = new Map<string, string>();
  t.equal(resolveAgentId({ headers: none, bodyField: field('alice'), messages: [] }), 'alice');
  const claudeCode = `user_${'a'.repeat(64)}_account_${'b'.repeat(36)}_session_${'c'.repeat(36)}`;
  const hashed = resolveAgentId({ headers: none, bodyField: field(claudeCode), messages: [] });
  t.match(hashed, /^user-[0-9a-f]{16}$/, 'too long for an agent id: named by its hash');
  t.equal(resolveAgentId({ headers: none, bodyField: field(claudeCode), messages: [] }), hashed, 'stably');
  t.equal(resolveAgentId({ headers: new Map([['x-agent-id', 'bob']]), bodyField: field('alice'), messages: [] }), 'bob');
});
