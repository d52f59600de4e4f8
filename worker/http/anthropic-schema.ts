/**
 * The bodies of `POST /v1/messages` and `POST /v1/messages/count_tokens`, checked by zod and mapped to
 * the protocol's chat messages. Unlike the OpenAI route (whose clients send many vendor extras), the
 * real Anthropic API refuses unknown top-level fields, and so do we: a 400 naming the field, so a
 * client relying on a feature we lack learns it at once instead of getting a silently different
 * answer. For the same reason tool use, extended thinking, assistant prefill and non-text blocks are
 * refused with a message saying they are not supported yet.
 */
import { z } from 'zod';
import { BadRequestError } from '../../shared/errors.js';
import { deepestIssue } from './request-checks.js';
import type { ChatMessage, GenerateMessage, SamplingParams } from '../../shared/protocol/messages.js';
import { defaultSampling, maxStopStrings } from './openai-schema.js';

/** `cache_control` is accepted and ignored: every agent's prompt is cached automatically. */
const cacheControl = z.object({ type: z.literal('ephemeral'), ttl: z.enum(['5m', '1h']).optional() }).nullish();
const textBlock = z.object({ type: z.literal('text'), text: z.string(), cache_control: cacheControl, citations: z.array(z.unknown()).nullish() });
const content = z.union([z.string(), z.array(textBlock)], { error: 'expected a string or an array of text blocks' });

const message = z.object({ role: z.enum(['user', 'assistant']), content });

const conversation = {
  model: z.string().min(1),
  messages: z.array(message).min(1, 'at least one message is required'),
  system: content.nullish(),
  /** Only absent or empty ever gets this far: see rejectUnsupported. */
  tools: z.array(z.unknown()).nullish(),
  tool_choice: z.unknown().optional(),
  thinking: z.object({ type: z.literal('disabled', 'extended thinking is not supported by this server yet') }).nullish(),
};

const required = (expected: string) => (issue: { input?: unknown }) => (issue.input === undefined ? 'Field required' : `expected ${expected}`);

export const messagesRequestSchema = z.strictObject({
  ...conversation,
  max_tokens: z.number({ error: required('an integer') }).int().min(1),
  metadata: z.strictObject({ user_id: z.string().max(256).nullish() }).nullish(),
  stop_sequences: z.array(z.string().min(1, 'stop sequences must not be empty')).max(maxStopStrings).nullish(),
  stream: z.boolean().nullish(),
  temperature: z.number().min(0).max(1).nullish(),
  top_p: z.number().gt(0).max(1).nullish(),
  top_k: z.number().int().nonnegative().nullish(),
  /** Accepted and ignored: there is one tier here. */
  service_tier: z.enum(['auto', 'standard_only']).nullish(),
});

export const countTokensRequestSchema = z.strictObject(conversation);

export type MessagesRequest = z.infer<typeof messagesRequestSchema>;
export type CountTokensRequest = z.infer<typeof countTokensRequestSchema>;

/** The real API's wording for unknown fields is "<field>: Extra inputs are not permitted". */
function toBadRequest(error: z.ZodError): BadRequestError {
  const first = error.issues[0];
  if (first === undefined) return new BadRequestError('The request body is invalid.');
  const issue = deepestIssue(first);
  if (issue.code === 'unrecognized_keys') {
    const param = [...issue.path.map(String), issue.keys[0] ?? ''].join('.');
    return new BadRequestError(`${param}: Extra inputs are not permitted`, param);
  }
  if (issue.path.length === 0) return new BadRequestError(`The request body must be a JSON object: ${issue.message}`);
  const param = issue.path.map(String).join('.');
  return new BadRequestError(`${param}: ${issue.message}`, param);
}

const toolBlockTypes = new Set(['tool_use', 'tool_result', 'server_tool_use', 'web_search_tool_result']);
const toolsNotSupported = 'tool use is not supported by this server yet';

function rejectBlocks(value: unknown, path: string): void {
  if (!Array.isArray(value)) return;
  for (const [i, block] of value.entries()) {
    const type = (block as { type?: unknown } | null)?.type;
    if (typeof type !== 'string' || type === 'text') continue;
    const param = `${path}.${i}.type`;
    if (toolBlockTypes.has(type)) throw new BadRequestError(`${param}: ${toolsNotSupported} ('${type}' blocks)`, param);
    throw new BadRequestError(`${param}: '${type}' content blocks are not supported by this server yet; only 'text'`, param);
  }
}

/** Features of the real API we do not implement, refused with a clear message before schema checks. */
function rejectUnsupported(body: unknown): void {
  if (typeof body !== 'object' || body === null) return;
  const { tools, tool_choice: toolChoice, messages, system } = body as Record<string, unknown>;
  if (Array.isArray(tools) && tools.length > 0) throw new BadRequestError(`tools: ${toolsNotSupported}`, 'tools');
  const choice = (toolChoice as { type?: unknown } | null | undefined)?.type;
  if (toolChoice !== undefined && toolChoice !== null && choice !== 'none') throw new BadRequestError(`tool_choice: ${toolsNotSupported}`, 'tool_choice');
  rejectBlocks(system, 'system');
  if (!Array.isArray(messages)) return;
  for (const [i, m] of messages.entries()) rejectBlocks((m as { content?: unknown } | null)?.content, `messages.${i}.content`);
}

function parse<T>(schema: z.ZodType<T>, body: unknown): T {
  rejectUnsupported(body);
  const parsed = schema.safeParse(body);
  if (!parsed.success) throw toBadRequest(parsed.error);
  return parsed.data;
}

/** Throws BadRequestError naming the first offending field. */
export function parseMessagesRequest(body: unknown): MessagesRequest {
  return parse(messagesRequestSchema, body);
}

export function parseCountTokensRequest(body: unknown): CountTokensRequest {
  return parse(countTokensRequestSchema, body);
}

/** Blocks are joined with newlines, as the OpenAI route joins parts: one conversation, one prompt. */
function contentText(value: string | { text: string }[]): string {
  return typeof value === 'string' ? value : value.map((block) => block.text).join('\n');
}

/**
 * The conversation as the chat template sees it: `system` first, then the turns. Consecutive turns
 * of one role are merged, as the real API does. A final assistant turn would be a prefill the model
 * continues; the template closes every turn, so that is refused rather than answered wrongly.
 */
export function chatMessages(request: CountTokensRequest): ChatMessage[] {
  const out: ChatMessage[] = [];
  const system = request.system === null || request.system === undefined ? '' : contentText(request.system);
  if (system !== '') out.push({ role: 'system', content: system });
  for (const m of request.messages) {
    const text = contentText(m.content);
    const last = out.at(-1);
    if (last?.role === m.role) last.content += `\n${text}`;
    else out.push({ role: m.role, content: text });
  }
  const final = request.messages.length - 1;
  if (request.messages[final]?.role === 'assistant') {
    throw new BadRequestError(`messages.${final}.role: a final assistant message (prefill) is not supported by this server yet`, `messages.${final}.role`);
  }
  return out;
}

function toSampling(request: MessagesRequest): SamplingParams {
  return {
    ...defaultSampling,
    temperature: request.temperature ?? defaultSampling.temperature,
    topP: request.top_p ?? defaultSampling.topP,
    topK: request.top_k ?? defaultSampling.topK,
  };
}

export function toGenerateMessage(request: MessagesRequest, messages: ChatMessage[], requestId: string, agentId: string): GenerateMessage {
  return {
    type: 'generate',
    requestId,
    agentId,
    input: { kind: 'chat', messages },
    sampling: toSampling(request),
    maxTokens: request.max_tokens,
    stop: request.stop_sequences ?? [],
  };
}
