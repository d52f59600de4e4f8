/**
 * Hostile requests for both API families, as one fast-check arbitrary: a route, a body derived from
 * that route's own zod schema (valid-ish, then mutated, see mutations.ts) and headers a client might
 * send (content types, agent and session ids with bytes outside the id alphabet, keys, junk). Shared
 * by test/process/fuzz-http.test.ts (1,000 cases in CI) and bench/fuzz.ts (`npm run fuzz`).
 *
 * Valid bodies ask for 1 to 3 tokens: a valid request reaches the model, and the budget is for variety.
 * Header values keep to what node:http lets a client send (tab, printable ASCII, bytes 0x80-0xFF):
 * malformed framing (CR, LF, NUL, split writes) is the raw-socket conformance tests' job.
 */
import fc from 'fast-check';
import { z } from 'zod';
import { chatCompletionRequestSchema } from '../../../worker/api/openai/schema.js';
import { completionRequestSchema } from '../../../worker/api/openai/completions-schema.js';
import { countTokensRequestSchema, messagesRequestSchema } from '../../../worker/api/anthropic/schema.js';
import { inputTokensSchema, responseCreateSchema } from '../../../worker/api/responses/schema.js';
import { schemaArbitrary, type JsonSchema, type Overrides } from './schema-arbitrary.js';
import { applyTextMutation, applyValueMutation, textMutation, valueMutation, type TextMutation, type ValueMutation } from './mutations.js';

export type Family = 'openai' | 'anthropic';

export interface Endpoint {
  path: string;
  family: Family;
  /** The route names an agent (X-Agent-ID, X-Session-ID): an id outside the alphabet must be refused. */
  namesAgent: boolean;
}

/** Each route's body schema, kept out of `Endpoint` so a printed counterexample stays readable. */
const schemas = new Map<string, z.ZodType>([
  ['/v1/chat/completions', chatCompletionRequestSchema],
  ['/v1/completions', completionRequestSchema],
  ['/v1/messages', messagesRequestSchema],
  ['/v1/messages/count_tokens', countTokensRequestSchema],
  ['/v1/responses', responseCreateSchema],
  ['/v1/responses/input_tokens', inputTokensSchema],
]);

export const endpoints: readonly Endpoint[] = [
  { path: '/v1/chat/completions', family: 'openai', namesAgent: true },
  { path: '/v1/completions', family: 'openai', namesAgent: true },
  { path: '/v1/messages', family: 'anthropic', namesAgent: true },
  { path: '/v1/messages/count_tokens', family: 'anthropic', namesAgent: false },
  { path: '/v1/responses', family: 'openai', namesAgent: true },
  { path: '/v1/responses/input_tokens', family: 'openai', namesAgent: false },
];

export interface FuzzRequest {
  endpoint: Endpoint;
  /** Header names in lower case; values as node:http writes them (latin1: one char per byte). */
  headers: Record<string, string>;
  body: Buffer;
  /** What was done to the body, e.g. ['wrong-type', 'truncate']; empty for a valid-ish one. */
  mutations: string[];
}

const printable = fc.integer({ min: 0x20, max: 0x7e }).map((code) => String.fromCharCode(code));
const highByte = fc.integer({ min: 0x80, max: 0xff }).map((code) => String.fromCharCode(code));
/** Any value node:http writes without refusing it. */
const headerText = fc.string({
  unit: fc.oneof({ weight: 8, arbitrary: printable }, { weight: 1, arbitrary: highByte }, { weight: 1, arbitrary: fc.constant('\t') }),
  maxLength: 40,
});
/** Text as UTF-8 bytes on the wire (node:http writes header strings as latin1). */
const utf8Bytes = (text: string): string => Buffer.from(text, 'utf8').toString('latin1');

const validAgentId = fc.stringMatching(/^[A-Za-z0-9_:-][A-Za-z0-9._:-]{0,40}$/);
const agentIdValue = fc.oneof(
  { weight: 4, arbitrary: validAgentId },
  {
    weight: 1,
    arbitrary: fc.constantFrom('../escape', '.hidden', 'a/b', 'a b', 'a'.repeat(129), 'agent\\1', 'agent%2F..', 'CON', 'agent\u00e9', utf8Bytes('🤖agent'), utf8Bytes('агент')),
  },
  { weight: 1, arbitrary: headerText },
  { weight: 1, arbitrary: fc.string({ unit: 'grapheme', maxLength: 12 }).map(utf8Bytes) },
);

const contentType = fc.oneof(
  { weight: 12, arbitrary: fc.constant('application/json') },
  {
    weight: 3,
    arbitrary: fc.constantFrom(
      'application/json; charset=utf-8',
      'APPLICATION/JSON',
      'application/json;charset=latin1',
      'text/plain',
      'application/x-www-form-urlencoded',
      'multipart/form-data; boundary=x',
      'application/jsonx',
      'text/event-stream',
      '*/*',
      '',
    ),
  },
  { weight: 1, arbitrary: headerText },
  { weight: 1, arbitrary: fc.constant(undefined) },
);

/** Headers a client may set; undefined ones are not sent. */
const headerSet = fc.record(
  {
    'content-type': contentType,
    'x-agent-id': agentIdValue,
    'x-session-id': agentIdValue,
    'x-request-id': fc.oneof(fc.stringMatching(/^[A-Za-z0-9._:-]{1,128}$/), headerText),
    authorization: fc.oneof(
      fc.constant('Bearer sk-test'),
      headerText.map((text) => `Bearer ${text}`),
      headerText,
    ),
    'x-api-key': headerText,
    'anthropic-version': fc.oneof(fc.constant('2023-06-01'), headerText),
    accept: fc.constantFrom('application/json', 'text/event-stream', '*/*', 'text/html', ''),
    'x-fuzz': headerText,
  },
  { requiredKeys: ['content-type'] },
);

function withoutUndefined(headers: Record<string, string | undefined>): Record<string, string> {
  return Object.fromEntries(Object.entries(headers).filter((entry): entry is [string, string] => entry[1] !== undefined));
}

/** A JSON Schema as a tool's parameters or a response format's schema: mostly sane ones, which reach the grammar builder. */
const leafSchema = fc.oneof(
  fc.constantFrom(
    { type: 'string' },
    { type: 'integer' },
    { type: 'number' },
    { type: 'boolean' },
    { type: 'null' },
    { type: 'string', enum: ['a', 'b'] },
    { type: 'array', items: { type: 'string' } },
    {},
  ),
  fc.record({ type: fc.constant('string'), maxLength: fc.nat(5), pattern: fc.constantFrom('^a+$', '[0-9]{2}', '(', '.*') }, { requiredKeys: ['type'] }),
);
const objectSchema = fc
  .dictionary(fc.stringMatching(/^[a-z_]{1,8}$/), leafSchema, { maxKeys: 3 })
  .chain((properties) => fc.subarray(Object.keys(properties)).map((required) => ({ type: 'object', properties, required })));
const toolSchema = fc.oneof(
  { weight: 4, arbitrary: objectSchema },
  { weight: 1, arbitrary: fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 3 }) },
);

function overridesFor(modelId: string): Overrides {
  const tinyCount = fc.integer({ min: 1, max: 3 });
  return {
    model: fc.oneof({ weight: 9, arbitrary: fc.constant(modelId) }, { weight: 1, arbitrary: fc.string({ maxLength: 12 }) }),
    max_tokens: tinyCount,
    max_completion_tokens: tinyCount,
    max_output_tokens: tinyCount,
    user: validAgentId,
    prompt: fc.oneof(fc.string({ maxLength: 24 }), fc.tuple(fc.string({ maxLength: 24 }))),
    parameters: toolSchema,
    input_schema: toolSchema,
    schema: toolSchema,
  };
}

/**
 * OpenAI's max_tokens (the Responses API's max_output_tokens) is optional; without it (never generated, or dropped by a mutation) a request
 * would run to the default length, seconds of decoding that test nothing new, so one is set.
 */
function capped(endpoint: Endpoint, body: unknown): unknown {
  if (endpoint.family !== 'openai' || endpoint.path === '/v1/responses/input_tokens' || typeof body !== 'object' || body === null || Array.isArray(body)) return body;
  const fields = body as Record<string, unknown>;
  if (endpoint.path === '/v1/responses') return fields.max_output_tokens === undefined ? { ...fields, max_output_tokens: 2 } : body;
  return fields.max_tokens === undefined && fields.max_completion_tokens === undefined ? { ...fields, max_tokens: 2 } : body;
}

function validishBody(endpoint: Endpoint, modelId: string): fc.Arbitrary<unknown> {
  const schema = z.toJSONSchema(schemas.get(endpoint.path)!, { io: 'input', unrepresentable: 'any' }) as JsonSchema;
  return schemaArbitrary(schema, overridesFor(modelId));
}

/** Serialises the body and writes the raw numbers JSON.stringify cannot (1e400, -0). */
export function serialise(endpoint: Endpoint, body: unknown, mutations: ValueMutation[], text: TextMutation | undefined): Buffer {
  const placeholders = new Map<string, string>();
  const mutated = mutations.reduce((value, mutation) => applyValueMutation(value, mutation, placeholders), structuredClone(body));
  let json = JSON.stringify(capped(endpoint, mutated)) ?? '';
  for (const [placeholder, raw] of placeholders) json = json.replace(placeholder, raw);
  const bytes = Buffer.from(json, 'utf8');
  return text === undefined ? bytes : applyTextMutation(bytes, text);
}

function requestTo(endpoint: Endpoint, modelId: string): fc.Arbitrary<FuzzRequest> {
  return fc
    .record({
      body: validishBody(endpoint, modelId),
      values: fc.oneof({ weight: 2, arbitrary: fc.constant<ValueMutation[]>([]) }, { weight: 3, arbitrary: fc.array(valueMutation, { minLength: 1, maxLength: 3 }) }),
      text: fc.oneof({ weight: 6, arbitrary: fc.constant<TextMutation | undefined>(undefined) }, { weight: 1, arbitrary: textMutation }),
      headers: headerSet,
    })
    .map(({ body, values, text, headers }) => ({
      endpoint,
      headers: withoutUndefined(headers),
      body: serialise(endpoint, body, values, text),
      mutations: [...values.map((m) => m.kind), ...(text === undefined ? [] : [text.kind])],
    }));
}

/** One hostile request to any of the routes. */
export function fuzzRequest(modelId: string): fc.Arbitrary<FuzzRequest> {
  return fc.oneof(...endpoints.map((endpoint) => requestTo(endpoint, modelId)));
}

/** A plain valid chat request: the server must still answer it 200 after the fuzzing. */
export function plainChatRequest(modelId: string): FuzzRequest {
  const body = { model: modelId, messages: [{ role: 'user', content: 'still there?' }], max_tokens: 2 };
  return { endpoint: endpoints[0]!, headers: { 'content-type': 'application/json' }, body: Buffer.from(JSON.stringify(body)), mutations: [] };
}
