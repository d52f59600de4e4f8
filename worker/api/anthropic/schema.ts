/**
 * The bodies of `POST /v1/messages` and `POST /v1/messages/count_tokens`, checked by zod, and the
 * protocol message they become. Unlike the OpenAI route (whose clients send many vendor extras), the
 * real Anthropic API refuses unknown top-level fields, and so do we: a 400 naming the field, so a
 * client relying on a feature we lack learns it at once instead of getting a silently different
 * answer. For the same reason server tools, assistant prefill and non-text blocks (images, documents)
 * are refused with a message saying they are not supported yet. The newer and beta fields clients send
 * (thinking, context_management, output_config…) are declared in request-fields.ts.
 */
import { z } from 'zod';
import { BadRequestError } from '../../../shared/errors.js';
import { badRequestOf, type IssueWording } from '../request-checks.js';
import type { ChatMessage, GenerateInput, GenerateMessage, ReasoningRequest, SamplingParams, ToolDefinition } from '../../../shared/protocol/messages.js';
import type { ToolFormat } from '../../tools/format.js';
import { toolChoiceGrammar, toolsForPrompt, type ToolChoice } from '../../tools/tool-choice.js';
import { defaultSampling, maxStopStrings } from '../sampling.js';
import { jsonSchemaGrammar } from '../../tools/json-grammar.js';
import { cacheControl, checkBetaFields, checkThinkingBudget, extraRequestFields, outputSchema, thinkingConfig } from './request-fields.js';
import { reasoningOf } from './thinking.js';

const required = (expected: string) => (issue: { input?: unknown }) => (issue.input === undefined ? 'Field required' : `expected ${expected}`);
const requiredString = () => z.string({ error: required('a string') });

const textBlock = z.object({ type: z.literal('text'), text: z.string(), cache_control: cacheControl, citations: z.array(z.unknown()).nullish() });
const textContent = z.union([z.string(), z.array(textBlock)], { error: 'expected a string or an array of text blocks' });

/** A call the assistant made, sent back in its turn of the conversation. */
const toolUseBlock = z.object({
  type: z.literal('tool_use'),
  id: requiredString().min(1),
  name: requiredString().min(1),
  input: z.record(z.string(), z.unknown(), { error: required('an object') }),
  cache_control: cacheControl,
});

/**
 * The assistant's reasoning, echoed back by clients in its turn: the turn's reasoning for the template,
 * which decides whether to render it (reasoning templates keep only a tool loop's in progress; others
 * never saw it in training). A redacted block's data cannot be read, and is dropped (content.ts).
 */
const thinkingBlock = z.object({ type: z.literal('thinking'), thinking: z.string(), signature: z.string().optional() });
const redactedThinkingBlock = z.object({ type: z.literal('redacted_thinking'), data: z.string() });

/** A tool search's result (advanced-tool-use beta): it loads the named deferred tool into the prompt. */
const toolReferenceBlock = z.object({ type: z.literal('tool_reference'), tool_name: requiredString().min(1), cache_control: cacheControl });
const toolResultContent = z.union([z.string(), z.array(z.discriminatedUnion('type', [textBlock, toolReferenceBlock]))], {
  error: 'expected a string or an array of text and tool_reference blocks',
});

/** The result of one call, in the user turn after it. */
const toolResultBlock = z.object({
  type: z.literal('tool_result'),
  tool_use_id: requiredString().min(1),
  content: toolResultContent.optional(),
  is_error: z.boolean().optional(),
  cache_control: cacheControl,
});

const contentBlock = z.discriminatedUnion('type', [textBlock, toolUseBlock, toolResultBlock, thinkingBlock, redactedThinkingBlock]);
const content = z.union([z.string(), z.array(contentBlock)], { error: 'expected a string or an array of content blocks' });
/**
 * A system message inside the conversation (the mid-conversation-system beta, which Claude Code sends):
 * rendered where it stands; with `clear_at: "next_user_message"` only until a later user turn exists.
 */
const systemMessage = z.object({
  role: z.literal('system'),
  content: textContent.optional(),
  clear_at: z.enum(['next_user_message', 'never']).nullish(),
  output_config: z.looseObject({}).nullish(),
});
const message = z.discriminatedUnion('role', [z.object({ role: z.enum(['user', 'assistant']), content }), systemMessage], {
  error: 'expected a message with role "user", "assistant" or "system"',
});

/** A client tool: the model sees its name, description and input schema (a JSON Schema for an object). */
const tool = z.object({
  type: z.literal('custom').optional(),
  name: requiredString().regex(/^[a-zA-Z0-9_-]{1,64}$/, 'tool names must match ^[a-zA-Z0-9_-]{1,64}$'),
  description: z.string().optional(),
  input_schema: z.looseObject({ type: z.literal('object', 'expected "object": a tool takes an object') }, { error: required('an object') }),
  cache_control: cacheControl,
  /** Left out of the prompt until a tool_reference block (a tool search's result) names it, as the real API does. */
  defer_loading: z.boolean().optional(),
  // Accepted, with no effect here: `strict` (calls forced by a grammar are valid anyway, free ones are
  // parsed as the model wrote them), `input_examples`, `eager_input_streaming`, `allowed_callers`.
  strict: z.boolean().optional(),
  input_examples: z.array(z.record(z.string(), z.unknown())).optional(),
  eager_input_streaming: z.boolean().nullish(),
  allowed_callers: z.array(z.string()).optional(),
});

const parallel = { disable_parallel_tool_use: z.boolean().optional() };
const toolChoice = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('auto'), ...parallel }),
  z.strictObject({ type: z.literal('any'), ...parallel }),
  z.strictObject({ type: z.literal('tool'), name: requiredString(), ...parallel }),
  z.strictObject({ type: z.literal('none') }),
]);

const conversation = {
  model: z.string().min(1),
  messages: z.array(message).min(1, 'at least one message is required'),
  system: textContent.nullish(),
  tools: z.array(tool).nullish(),
  tool_choice: toolChoice.nullish(),
  thinking: thinkingConfig.nullish(),
  ...extraRequestFields,
};

export const messagesRequestSchema = z.strictObject({
  ...conversation,
  max_tokens: z
    .number({ error: required('an integer') })
    .int()
    .min(1),
  metadata: z.strictObject({ user_id: z.string().max(256).nullish() }).nullish(),
  stop_sequences: z.array(z.string().min(1, 'stop sequences must not be empty')).max(maxStopStrings).nullish(),
  stream: z.boolean().nullish(),
  temperature: z.number().min(0).max(1).nullish(),
  top_p: z.number().gt(0).max(1).nullish(),
  top_k: z.number().int().nonnegative().nullish(),
});

export const countTokensRequestSchema = z.strictObject(conversation);

export type MessagesRequest = z.infer<typeof messagesRequestSchema>;
export type CountTokensRequest = z.infer<typeof countTokensRequestSchema>;
export type ContentBlock = z.infer<typeof contentBlock>;
export type AnthropicMessage = z.infer<typeof message>;

/** The real API's wording: unknown fields are "<field>: Extra inputs are not permitted". */
const anthropicWording: IssueWording = {
  unknownField: (param) => `${param}: Extra inputs are not permitted`,
  badField: (param, message) => `${param}: ${message}`,
};

const supportedBlocks = new Set(['text', 'tool_use', 'tool_result', 'thinking', 'redacted_thinking']);

/** Block types the real API has and we do not (images, documents, thinking, server tools' blocks). */
function rejectBlocks(value: unknown, path: string, supported: ReadonlySet<string>): void {
  if (!Array.isArray(value)) return;
  for (const [i, block] of value.entries()) {
    const type = (block as { type?: unknown } | null)?.type;
    if (typeof type !== 'string' || supported.has(type)) continue;
    const param = `${path}.${i}.type`;
    throw new BadRequestError(`${param}: '${type}' content blocks are not supported by this server yet; only ${[...supported].map((s) => `'${s}'`).join(', ')}`, param);
  }
}

/** Server tools (web search, code execution, bash…) run on Anthropic's side; there is no such side here. */
function rejectServerTools(tools: unknown): void {
  if (!Array.isArray(tools)) return;
  for (const [i, entry] of tools.entries()) {
    const type = (entry as { type?: unknown } | null)?.type;
    if (type === undefined || type === null || type === 'custom') continue;
    const param = `tools.${i}.type`;
    throw new BadRequestError(`${param}: server tools ('${String(type)}') are not supported by this server; only client tools with an input_schema`, param);
  }
}

/** Features of the real API we do not implement, refused with a clear message before schema checks. */
function rejectUnsupported(body: unknown): void {
  if (typeof body !== 'object' || body === null) return;
  const { tools, messages, system } = body as Record<string, unknown>;
  rejectServerTools(tools);
  rejectBlocks(system, 'system', new Set(['text']));
  if (!Array.isArray(messages)) return;
  for (const [i, m] of messages.entries()) rejectBlocks((m as { content?: unknown } | null)?.content, `messages.${i}.content`, supportedBlocks);
}

/** What zod cannot see field by field: tool names unique, and tool_choice naming a tool the request has. */
function checkTools(request: CountTokensRequest): void {
  const names = new Set<string>();
  for (const [i, { name }] of (request.tools ?? []).entries()) {
    if (names.has(name)) throw new BadRequestError(`tools.${i}.name: tool names must be unique; '${name}' is given twice`, `tools.${i}.name`);
    names.add(name);
  }
  const choice = request.tool_choice;
  if (choice === null || choice === undefined) return;
  if (choice.type === 'tool' && !names.has(choice.name)) {
    throw new BadRequestError(`tool_choice.name: the tool '${choice.name}' is not among the request's tools`, 'tool_choice.name');
  }
  if (choice.type === 'any' && names.size === 0) throw new BadRequestError("tool_choice.type: 'any' needs at least one tool in tools", 'tool_choice.type');
}

function parse<T extends CountTokensRequest>(schema: z.ZodType<T>, body: unknown): T {
  rejectUnsupported(body);
  const parsed = schema.safeParse(body);
  if (!parsed.success) throw badRequestOf(parsed.error, anthropicWording);
  checkTools(parsed.data);
  checkBetaFields(parsed.data);
  return parsed.data;
}

/** Throws BadRequestError naming the first offending field. */
export function parseMessagesRequest(body: unknown): MessagesRequest {
  const request = parse(messagesRequestSchema, body);
  checkThinkingBudget(request.thinking, request.max_tokens);
  return request;
}

export function parseCountTokensRequest(body: unknown): CountTokensRequest {
  return parse(countTokensRequestSchema, body);
}

/** Anthropic's tool choice in the tool core's terms: `any` is OpenAI's `required`. No tool_choice is `auto`. */
export function toToolChoice(request: CountTokensRequest): ToolChoice {
  const choice = request.tool_choice;
  if (choice === null || choice === undefined || choice.type === 'auto') return { kind: 'auto' };
  if (choice.type === 'any') return { kind: 'required' };
  if (choice.type === 'tool') return { kind: 'tool', name: choice.name };
  return { kind: 'none' };
}

/** Tools a tool_reference block in the conversation loaded. */
function referencedTools(request: CountTokensRequest): Set<string> {
  const names = new Set<string>();
  for (const m of request.messages) {
    if (m.role === 'system' || typeof m.content === 'string') continue;
    for (const block of m.content) {
      if (block.type !== 'tool_result' || typeof block.content !== 'object') continue;
      for (const part of block.content) if (part.type === 'tool_reference') names.add(part.tool_name);
    }
  }
  return names;
}

/**
 * The request's tools in the protocol's shape: `input_schema` is the JSON Schema of the call's arguments.
 * A deferred tool (`defer_loading`) is in it only once a tool search loaded it.
 */
export function toolDefinitions(request: CountTokensRequest): ToolDefinition[] {
  const loaded = referencedTools(request);
  return (request.tools ?? [])
    .filter((t) => t.defer_loading !== true || loaded.has(t.name))
    .map((t) => ({ name: t.name, ...(t.description === undefined ? {} : { description: t.description }), parameters: t.input_schema }));
}

/** How the model may answer this request: which tools it is told of, whether its calls are parsed, how many are kept. */
export interface ToolUse {
  /** The tools rendered into the prompt; empty when there are none or tool_choice is `none`. */
  promptTools: ToolDefinition[];
  /** Forces a call (`any`, `tool`); undefined when the model is free to answer in text. */
  grammar: string | undefined;
  /** `disable_parallel_tool_use`: only the first call is kept. */
  maxCalls: number;
}

/** The tools the model is told of: count_tokens counts exactly these. */
export function promptTools(request: CountTokensRequest): ToolDefinition[] {
  return toolsForPrompt(toolDefinitions(request), toToolChoice(request));
}

export function toolUse(request: CountTokensRequest, format: ToolFormat): ToolUse {
  const tools = toolDefinitions(request);
  const choice = toToolChoice(request);
  const promptTools = toolsForPrompt(tools, choice);
  const grammar = promptTools.length === 0 ? undefined : toolChoiceGrammar(format, tools, choice);
  const single =
    request.tool_choice !== null &&
    request.tool_choice !== undefined &&
    'disable_parallel_tool_use' in request.tool_choice &&
    request.tool_choice.disable_parallel_tool_use === true;
  return { promptTools, grammar, maxCalls: single ? 1 : Infinity };
}

/** The chat as the engine renders it, tools included: generation and count_tokens share it, so the counts agree. */
export function chatInput(messages: ChatMessage[], use: Pick<ToolUse, 'promptTools'>): GenerateInput {
  return { kind: 'chat', messages, ...(use.promptTools.length === 0 ? {} : { tools: use.promptTools }) };
}

function toSampling(request: MessagesRequest, grammar: string | undefined): SamplingParams {
  return {
    ...defaultSampling,
    temperature: request.temperature ?? defaultSampling.temperature,
    topP: request.top_p ?? defaultSampling.topP,
    topK: request.top_k ?? defaultSampling.topK,
    ...(grammar === undefined ? {} : { grammar }),
  };
}

/**
 * The grammar the answer is held to: a forced call's; else, when no tool is offered, the structured
 * output's (`output_config.format`, `output_format`). With tools offered the model must stay free to call one.
 */
function answerGrammar(request: CountTokensRequest, use: ToolUse): string | undefined {
  if (use.grammar !== undefined || use.promptTools.length > 0) return use.grammar;
  const format = outputSchema(request);
  return format === undefined ? undefined : jsonSchemaGrammar(format.schema, format.param);
}

/** The request's `thinking` as the generate message's reasoning (thinking.ts); count_tokens renders with it too. */
export function requestReasoning(request: CountTokensRequest, use: ToolUse): ReasoningRequest {
  return reasoningOf(request.thinking, answerGrammar(request, use) !== undefined);
}

/** `maxTokens`: max_tokens, or less where the context cannot hold it (messages.ts). */
export function toGenerateMessage(
  request: MessagesRequest,
  messages: ChatMessage[],
  requestId: string,
  agentId: string,
  use: ToolUse,
  maxTokens = request.max_tokens,
): GenerateMessage {
  return {
    type: 'generate',
    requestId,
    agentId,
    input: chatInput(messages, use),
    sampling: toSampling(request, answerGrammar(request, use)),
    maxTokens,
    stop: request.stop_sequences ?? [],
    reasoning: requestReasoning(request, use),
  };
}
