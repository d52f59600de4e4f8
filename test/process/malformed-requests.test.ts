// Malformed and hostile requests against a real server, table-driven: each gets its expected status
// and error type in the API family's own shape, none gets a 500, and the server keeps serving.
import t from 'tap';
import { tinyModelPath } from '../helpers/model.js';
import { startServer } from '../helpers/server.js';

const modelPath = await tinyModelPath();
const server = await startServer(['serve', '--port', '0', '--model', modelPath, '--model-id', 'tiny', '--threads', '1', '--context-size', '1024', '--max-body-bytes', '4096']);
t.teardown(() => server.stop());

type Family = 'openai' | 'anthropic';
interface Case {
  name: string;
  method?: string;
  path: string;
  body?: unknown;
  /** Sent as is instead of JSON.stringify(body). */
  raw?: string | Uint8Array<ArrayBuffer>;
  headers?: Record<string, string>;
  status: number;
  /** The error `type` in the family's shape (OpenAI `error.type`, Anthropic `error.type`). */
  type: string;
  family: Family;
  /** The field the error names (OpenAI `error.param`), when it names one. */
  param?: string;
}

const user = [{ role: 'user', content: 'hi' }];
const chat = (body: Record<string, unknown>): Record<string, unknown> => ({ model: 'tiny', messages: user, max_tokens: 4, ...body });
const msgs = (body: Record<string, unknown>): Record<string, unknown> => ({ model: 'tiny', messages: user, max_tokens: 4, ...body });
/** A JSON Schema `levels` objects deep, each with one required property. */
const deepSchema = (levels: number): Record<string, unknown> =>
  levels === 0 ? { type: 'string' } : { type: 'object', properties: { a: deepSchema(levels - 1) }, required: ['a'] };
const deepValue = (levels: number): unknown => (levels === 0 ? 1 : { a: deepValue(levels - 1) });
const C = '/v1/chat/completions';
const M = '/v1/messages';
const bad = 'invalid_request_error';

const cases: Case[] = [
  // The body itself
  { name: 'not JSON', path: C, raw: '{"model":', status: 400, type: bad, family: 'openai' },
  { name: 'empty body', path: C, raw: '', status: 400, type: bad, family: 'openai' },
  { name: 'JSON null', path: C, raw: 'null', status: 400, type: bad, family: 'openai' },
  { name: 'JSON array', path: C, raw: '[]', status: 400, type: bad, family: 'openai' },
  { name: 'JSON string', path: C, raw: '"hello"', status: 400, type: bad, family: 'openai' },
  { name: 'invalid UTF-8', path: C, raw: Uint8Array.of(0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d), status: 400, type: bad, family: 'openai' },
  { name: 'body over --max-body-bytes', path: C, raw: JSON.stringify(chat({ messages: [{ role: 'user', content: 'x'.repeat(5000) }] })), status: 413, type: bad, family: 'openai' },
  { name: '2,000-deep nesting', path: C, raw: '['.repeat(2000) + ']'.repeat(2000), status: 400, type: bad, family: 'openai' },
  {
    name: 'a tool schema nesting past the body depth limit',
    path: C,
    body: chat({ tools: [{ type: 'function', function: { name: 'f', parameters: deepValue(200) } }] }),
    status: 400,
    type: bad,
    family: 'openai',
  },
  {
    name: 'two tools of one name',
    path: C,
    body: chat({
      tools: [
        { type: 'function', function: { name: 'f' } },
        { type: 'function', function: { name: 'f' } },
      ],
    }),
    status: 400,
    type: bad,
    family: 'openai',
    param: 'tools.1.function.name',
  },
  {
    name: 'a forced call whose schema is too deep for a grammar',
    path: C,
    body: chat({ tools: [{ type: 'function', function: { name: 'f', parameters: deepSchema(40) } }], tool_choice: 'required' }),
    status: 400,
    type: bad,
    family: 'openai',
    param: 'tools',
  },
  {
    name: 'a json_schema too deep for a grammar',
    path: C,
    body: chat({ response_format: { type: 'json_schema', json_schema: { name: 'n', schema: deepSchema(40) } } }),
    status: 400,
    type: bad,
    family: 'openai',
    param: 'response_format.json_schema.schema',
  },
  // OpenAI chat fields
  { name: 'no model', path: C, body: { messages: user }, status: 400, type: bad, family: 'openai', param: 'model' },
  { name: 'model is a number', path: C, body: chat({ model: 7 }), status: 400, type: bad, family: 'openai', param: 'model' },
  { name: 'unknown model', path: C, body: chat({ model: 'gpt-9' }), status: 404, type: bad, family: 'openai', param: 'model' },
  { name: 'no messages', path: C, body: { model: 'tiny' }, status: 400, type: bad, family: 'openai', param: 'messages' },
  { name: 'empty messages', path: C, body: chat({ messages: [] }), status: 400, type: bad, family: 'openai', param: 'messages' },
  { name: 'messages is an object', path: C, body: chat({ messages: { role: 'user' } }), status: 400, type: bad, family: 'openai', param: 'messages' },
  { name: 'unknown role', path: C, body: chat({ messages: [{ role: 'wizard', content: 'hi' }] }), status: 400, type: bad, family: 'openai', param: 'messages.0.role' },
  { name: 'content is a number', path: C, body: chat({ messages: [{ role: 'user', content: 42 }] }), status: 400, type: bad, family: 'openai', param: 'messages.0.content' },
  {
    name: 'an image part',
    path: C,
    body: chat({ messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'http://x' } }] }] }),
    status: 400,
    type: bad,
    family: 'openai',
    param: 'messages.0.content.0.type',
  },
  { name: 'negative temperature', path: C, body: chat({ temperature: -1 }), status: 400, type: bad, family: 'openai', param: 'temperature' },
  { name: 'temperature as text', path: C, body: chat({ temperature: 'hot' }), status: 400, type: bad, family: 'openai', param: 'temperature' },
  {
    name: 'temperature 1e400 (Infinity)',
    path: C,
    raw: JSON.stringify(chat({})).replace('{', '{"temperature":1e400,'),
    status: 400,
    type: bad,
    family: 'openai',
    param: 'temperature',
  },
  { name: 'top_p above 1', path: C, body: chat({ top_p: 2 }), status: 400, type: bad, family: 'openai', param: 'top_p' },
  { name: 'max_tokens 0', path: C, body: chat({ max_tokens: 0 }), status: 400, type: bad, family: 'openai', param: 'max_tokens' },
  { name: 'max_tokens negative', path: C, body: chat({ max_tokens: -5 }), status: 400, type: bad, family: 'openai', param: 'max_tokens' },
  { name: 'max_tokens fractional', path: C, body: chat({ max_tokens: 1.5 }), status: 400, type: bad, family: 'openai', param: 'max_tokens' },
  { name: 'max_tokens beyond the context', path: C, body: chat({ max_tokens: 1_000_000 }), status: 400, type: bad, family: 'openai' },
  { name: 'n = 2', path: C, body: chat({ n: 2 }), status: 400, type: bad, family: 'openai', param: 'n' },
  { name: '17 stop strings', path: C, body: chat({ stop: Array.from({ length: 17 }, (_, i) => `s${i}`) }), status: 400, type: bad, family: 'openai', param: 'stop' },
  { name: 'stop is a number', path: C, body: chat({ stop: 5 }), status: 400, type: bad, family: 'openai', param: 'stop' },
  { name: 'stream as text', path: C, body: chat({ stream: 'yes' }), status: 400, type: bad, family: 'openai', param: 'stream' },
  { name: 'presence_penalty out of range', path: C, body: chat({ presence_penalty: 5 }), status: 400, type: bad, family: 'openai', param: 'presence_penalty' },
  { name: 'user with a path in it', path: C, body: chat({ user: '../../etc/passwd' }), status: 400, type: bad, family: 'openai', param: 'user' },
  { name: 'X-Agent-ID with a path in it', path: C, body: chat({}), headers: { 'x-agent-id': '../escape' }, status: 400, type: bad, family: 'openai' },
  { name: 'an undocumented field', path: C, body: chat({ frobnicate: true }), status: 400, type: bad, family: 'openai', param: 'frobnicate' },
  { name: 'logprobs: true', path: C, body: chat({ logprobs: true }), status: 400, type: bad, family: 'openai', param: 'logprobs' },
  {
    name: 'tool_choice naming an unknown tool',
    path: C,
    body: chat({ tools: [{ type: 'function', function: { name: 'f' } }], tool_choice: { type: 'function', function: { name: 'g' } } }),
    status: 400,
    type: bad,
    family: 'openai',
    param: 'tool_choice',
  },
  {
    name: 'tool message without tool_call_id',
    path: C,
    body: chat({ messages: [...user, { role: 'tool', content: 'r' }] }),
    status: 400,
    type: bad,
    family: 'openai',
    param: 'messages.1.tool_call_id',
  },
  {
    name: 'legacy completions: undocumented field',
    path: '/v1/completions',
    body: { model: 'tiny', prompt: 'x', max_tokens: 4, frobnicate: 1 },
    status: 400,
    type: bad,
    family: 'openai',
    param: 'frobnicate',
  },
  // Anthropic messages
  { name: 'anthropic: not JSON', path: M, raw: '{', status: 400, type: bad, family: 'anthropic' },
  { name: 'anthropic: no max_tokens', path: M, body: { model: 'tiny', messages: user }, status: 400, type: bad, family: 'anthropic' },
  { name: 'anthropic: max_tokens 0', path: M, body: msgs({ max_tokens: 0 }), status: 400, type: bad, family: 'anthropic' },
  {
    name: 'anthropic: a developer role in messages (system is a beta role there)',
    path: M,
    body: msgs({ messages: [{ role: 'developer', content: 'x' }] }),
    status: 400,
    type: bad,
    family: 'anthropic',
  },
  { name: 'anthropic: an unknown top-level field', path: M, body: msgs({ frequency_penalty: 1 }), status: 400, type: bad, family: 'anthropic' },
  { name: 'anthropic: system is a number', path: M, body: msgs({ system: 3 }), status: 400, type: bad, family: 'anthropic' },
  {
    name: 'anthropic: an image block',
    path: M,
    body: msgs({ messages: [{ role: 'user', content: [{ type: 'image', source: {} }] }] }),
    status: 400,
    type: bad,
    family: 'anthropic',
  },
  { name: 'anthropic: negative top_k', path: M, body: msgs({ top_k: -1 }), status: 400, type: bad, family: 'anthropic' },
  { name: 'anthropic: stop_sequences not a list', path: M, body: msgs({ stop_sequences: 'END' }), status: 400, type: bad, family: 'anthropic' },
  { name: 'anthropic: unknown model', path: M, body: msgs({ model: 'claude-9' }), status: 404, type: 'not_found_error', family: 'anthropic' },
  { name: 'anthropic: body over the limit', path: M, raw: JSON.stringify(msgs({ system: 'y'.repeat(5000) })), status: 413, type: 'request_too_large', family: 'anthropic' },
  { name: 'count_tokens: no messages', path: '/v1/messages/count_tokens', body: { model: 'tiny' }, status: 400, type: bad, family: 'anthropic' },
  {
    name: 'anthropic: tool_result without tool_use_id',
    path: M,
    body: msgs({ messages: [{ role: 'user', content: [{ type: 'tool_result', content: 'x' }] }] }),
    status: 400,
    type: bad,
    family: 'anthropic',
  },
  { name: 'anthropic: a tool without input_schema', path: M, body: msgs({ tools: [{ name: 'get_weather' }] }), status: 400, type: bad, family: 'anthropic' },
  {
    name: 'anthropic: a forced call whose schema is too deep for a grammar',
    path: M,
    body: msgs({ tools: [{ name: 'f', input_schema: deepSchema(40) }], tool_choice: { type: 'any' } }),
    status: 400,
    type: bad,
    family: 'anthropic',
  },
  {
    name: 'anthropic: tool_choice naming an unknown tool',
    path: M,
    body: msgs({ tools: [{ name: 'f', input_schema: { type: 'object' } }], tool_choice: { type: 'tool', name: 'g' } }),
    status: 400,
    type: bad,
    family: 'anthropic',
  },
  {
    name: 'anthropic: tool_use in a user turn',
    path: M,
    body: msgs({ messages: [{ role: 'user', content: [{ type: 'tool_use', id: 'toolu_1', name: 'f', input: {} }] }] }),
    status: 400,
    type: bad,
    family: 'anthropic',
  },
  { name: 'anthropic: a server tool', path: M, body: msgs({ tools: [{ type: 'web_search_20250305', name: 'web_search' }] }), status: 400, type: bad, family: 'anthropic' },
  // Routing
  { name: 'GET on a POST route', method: 'GET', path: C, status: 405, type: bad, family: 'openai' },
  { name: 'POST on a GET route', path: '/v1/models', body: {}, status: 405, type: bad, family: 'openai' },
  { name: 'an unknown path', method: 'GET', path: '/v2/everything', status: 404, type: bad, family: 'openai' },
  { name: 'DELETE a probe', method: 'DELETE', path: '/health/live', status: 405, type: bad, family: 'openai' },
];

function errorTypeOf(family: Family, body: Record<string, unknown>): unknown {
  const error = body.error as Record<string, unknown> | undefined;
  if (family === 'anthropic') return body.type === 'error' ? error?.type : `not an Anthropic error body: ${JSON.stringify(body)}`;
  return error?.type;
}

t.test(`${cases.length} malformed or hostile requests: each its status and error type, none a 500`, async (t) => {
  t.ok(cases.length >= 40);
  for (const c of cases) {
    const method = c.method ?? 'POST';
    const body = c.raw ?? (c.body === undefined ? undefined : JSON.stringify(c.body));
    const response = await fetch(server.url + c.path, {
      method,
      headers: { 'content-type': 'application/json', ...c.headers },
      body: method === 'GET' || method === 'DELETE' ? undefined : body,
    });
    const parsed = (await response.json()) as Record<string, unknown>;
    t.equal(response.status, c.status, `${c.name}: status`);
    t.equal(errorTypeOf(c.family, parsed), c.type, `${c.name}: error type`);
    if (c.param !== undefined) t.equal((parsed.error as Record<string, unknown>).param, c.param, `${c.name}: names ${c.param}`);
  }
  const ok = await fetch(server.url + C, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(chat({})) });
  t.equal(ok.status, 200, 'and the server still serves');
  await ok.arrayBuffer();
});
