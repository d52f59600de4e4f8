/**
 * The body of `POST /v1/chat/completions` (and the fields legacy completions share with it), checked
 * by one zod schema and mapped to the protocol's GenerateMessage. Bodies are strict, as OpenAI's own
 * API is: a field it does not document is a 400 "Unrecognized request argument supplied: X". Every
 * documented field is accepted; one we cannot honour with a non-default value (`logprobs: true`, a
 * non-empty `logit_bias`, audio) is a 400 naming it, never silently ignored. Violations name the
 * field's path (`messages.0.role`) as `param`.
 * `null` counts as absent for optional fields, because OpenAI's SDKs send explicit nulls.
 */
import { z } from 'zod';
import { badRequestOf, type IssueWording } from '../request-checks.js';
import { defaultSampling, maxStopStrings } from '../sampling.js';
import type { ChatMessage, GenerateInput, GenerateMessage, SamplingParams } from '../../../shared/protocol/messages.js';
import { reasoningEfforts, reasoningForEffort } from '../reasoning-effort.js';
import type { ToolFormat } from '../../tools/format.js';
import { assistantToolCall, responseFormatField, toolChoiceField, toolsField, toolUse, type ToolUse } from './tools.js';

export const notSupported = (what: string): string => `${what} is not supported by this server`;

const textPart = z.object({ type: z.literal('text'), text: z.string() });
const content = z.union([z.string(), z.array(textPart)], { error: 'expected a string or an array of text parts' });
const name = z.string().nullish();

const message = z.discriminatedUnion('role', [
  z.object({ role: z.enum(['system', 'developer', 'user']), content, name }),
  z.object({
    role: z.literal('assistant'),
    content: content.nullish(),
    name,
    refusal: z.string().nullish(),
    tool_calls: z.array(assistantToolCall).nullish(),
    /** A reasoning model's earlier reasoning, as llama-server, vLLM and DeepSeek return it; handed to the template. */
    reasoning_content: z.string().nullish(),
  }),
  z.object({ role: z.literal('tool'), content, tool_call_id: z.string({ error: 'a tool message needs the tool_call_id of the call it answers' }).min(1) }),
]);

const stopString = z.string().min(1, 'stop strings must not be empty');

/** Fields chat and legacy completions share: the model, sampling, stop strings, streaming, the agent. */
export const commonFields = {
  model: z.string().min(1),
  max_tokens: z.number().int().positive().nullish(),
  temperature: z.number().min(0).max(2).nullish(),
  top_p: z.number().gt(0).max(1).nullish(),
  /** llama-server extension. */
  top_k: z.number().int().nonnegative().nullish(),
  /** llama-server extension. */
  min_p: z.number().min(0).max(1).nullish(),
  /** llama-server extension. */
  repeat_penalty: z.number().positive().nullish(),
  seed: z.number().int().min(Number.MIN_SAFE_INTEGER).max(Number.MAX_SAFE_INTEGER).nullish(),
  stop: z.union([stopString, z.array(stopString).max(maxStopStrings)], { error: 'expected a string or an array of strings' }).nullish(),
  presence_penalty: z.number().min(-2).max(2).nullish(),
  frequency_penalty: z.number().min(-2).max(2).nullish(),
  n: z.literal(1, 'only n = 1 is supported').nullish(),
  stream: z.boolean().nullish(),
  stream_options: z.object({ include_usage: z.boolean().nullish() }).nullish(),
  user: z.string().nullish(),
  logit_bias: z
    .record(z.string(), z.number())
    .refine((bias) => Object.keys(bias).length === 0, notSupported('logit_bias'))
    .nullish(),
};
type CommonRequest = z.infer<z.ZodObject<typeof commonFields>>;

/** Documented chat fields that change nothing we compute: accepted, as OpenAI accepts them. */
const acceptedChatFields = {
  store: z.boolean().nullish(),
  metadata: z.record(z.string(), z.string()).nullish(),
  service_tier: z.string().nullish(),
  /** Bounds a reasoning model's think block (reasoning-effort.ts); ignored by models that do not reason. */
  reasoning_effort: z.enum(reasoningEfforts).nullish(),
  verbosity: z.string().nullish(),
  prediction: z.object({ type: z.literal('content'), content }).nullish(),
  parallel_tool_calls: z.boolean().nullish(),
  safety_identifier: z.string().nullish(),
  prompt_cache_key: z.string().nullish(),
};

/** Documented chat fields we cannot honour but at their defaults. */
const refusedChatFields = {
  logprobs: z.literal(false, notSupported('logprobs')).nullish(),
  top_logprobs: z.literal(0, notSupported('top_logprobs')).nullish(),
  modalities: z.array(z.literal('text', notSupported('output other than text'))).nullish(),
  audio: z.null(notSupported('audio output')).optional(),
  web_search_options: z.null(notSupported('web search')).optional(),
  functions: z.null(notSupported("'functions' (deprecated); use 'tools'")).optional(),
  function_call: z.null(notSupported("'function_call' (deprecated); use 'tool_choice'")).optional(),
};

export const chatCompletionRequestSchema = z.strictObject({
  ...commonFields,
  ...acceptedChatFields,
  ...refusedChatFields,
  messages: z.array(message).min(1, 'at least one message is required'),
  max_completion_tokens: z.number().int().positive().nullish(),
  tools: toolsField.nullish(),
  tool_choice: toolChoiceField.nullish(),
  response_format: responseFormatField.nullish(),
});

export type ChatCompletionRequest = z.infer<typeof chatCompletionRequestSchema>;

/** OpenAI's own wording, for a field it does not know too. */
const openAIWording: IssueWording = {
  unknownField: (param) => `Unrecognized request argument supplied: ${param}`,
  badField: (param, message) => `Invalid '${param}': ${message}`,
};

/** Throws BadRequestError naming the first offending field. */
export function parseOpenAIBody<T>(schema: z.ZodType<T>, body: unknown): T {
  const parsed = schema.safeParse(body);
  if (!parsed.success) throw badRequestOf(parsed.error, openAIWording);
  return parsed.data;
}

export function parseChatCompletionRequest(body: unknown): ChatCompletionRequest {
  return parseOpenAIBody(chatCompletionRequestSchema, body);
}

/** Text parts are joined with newlines, as llama-server and vLLM do. */
function contentText(value: string | { text: string }[] | null | undefined): string {
  if (value === null || value === undefined) return '';
  return typeof value === 'string' ? value : value.map((part) => part.text).join('\n');
}

/** llama.cpp seeds are uint32: any OpenAI integer seed maps onto one, deterministically. */
function toSeed(seed: number): number {
  return Number(BigInt.asUintN(32, BigInt(seed)));
}

function toSampling(request: CommonRequest): SamplingParams {
  const sampling: SamplingParams = {
    temperature: request.temperature ?? defaultSampling.temperature,
    topP: request.top_p ?? defaultSampling.topP,
    topK: request.top_k ?? defaultSampling.topK,
    minP: request.min_p ?? defaultSampling.minP,
    repeatPenalty: request.repeat_penalty ?? defaultSampling.repeatPenalty,
    frequencyPenalty: request.frequency_penalty ?? defaultSampling.frequencyPenalty,
    presencePenalty: request.presence_penalty ?? defaultSampling.presencePenalty,
  };
  if (request.seed !== null && request.seed !== undefined) sampling.seed = toSeed(request.seed);
  return sampling;
}

function toStop(stop: CommonRequest['stop']): string[] {
  if (stop === null || stop === undefined) return [];
  return typeof stop === 'string' ? [stop] : stop;
}

/** Messages in the protocol's shape; a tool result is told the name of the call it answers. */
export function chatMessages(request: ChatCompletionRequest): ChatMessage[] {
  const callNames = new Map<string, string>();
  return request.messages.map((m): ChatMessage => {
    if (m.role === 'tool') {
      const toolName = callNames.get(m.tool_call_id);
      return { role: 'tool', content: contentText(m.content), toolCallId: m.tool_call_id, ...(toolName === undefined ? {} : { name: toolName }) };
    }
    const mapped: ChatMessage = { role: m.role, content: contentText(m.content) };
    if (m.role === 'assistant' && typeof m.reasoning_content === 'string' && m.reasoning_content !== '') mapped.reasoning = m.reasoning_content;
    if (m.role === 'assistant' && m.tool_calls !== null && m.tool_calls !== undefined && m.tool_calls.length > 0) {
      for (const call of m.tool_calls) callNames.set(call.id, call.function.name);
      mapped.toolCalls = m.tool_calls.map((call) => ({ id: call.id, name: call.function.name, arguments: call.function.arguments }));
    }
    return mapped;
  });
}

/**
 * The protocol message for either endpoint's request and input. Without max tokens the message
 * carries none: the inference thread, which knows the prompt length, caps generation at its default
 * bounded by the room left in the context.
 */
export function toOpenAIGenerateMessage(request: CommonRequest, input: GenerateInput, maxTokens: number | null | undefined, requestId: string, agentId: string): GenerateMessage {
  const generate: GenerateMessage = { type: 'generate', requestId, agentId, input, sampling: toSampling(request), stop: toStop(request.stop) };
  if (maxTokens !== null && maxTokens !== undefined) generate.maxTokens = maxTokens;
  return generate;
}

/** The chat request as a protocol message, and how its output is read (calls, or all text). */
export function toChatGeneration(request: ChatCompletionRequest, requestId: string, agentId: string, toolFormat: ToolFormat): { message: GenerateMessage; tools: ToolUse } {
  const tools = toolUse(request, toolFormat);
  const input: GenerateInput = { kind: 'chat', messages: chatMessages(request), ...(tools.promptTools.length > 0 ? { tools: tools.promptTools } : {}) };
  const message = toOpenAIGenerateMessage(request, input, request.max_completion_tokens ?? request.max_tokens, requestId, agentId);
  if (tools.grammar !== undefined) message.sampling.grammar = tools.grammar;
  // A grammar shapes the whole output, so a forced call or JSON answer is written with thinking off.
  const reasoning = tools.grammar === undefined ? reasoningForEffort(request.reasoning_effort) : { enabled: false };
  if (reasoning !== undefined) message.reasoning = reasoning;
  return { message, tools };
}

export function toGenerateMessage(request: ChatCompletionRequest, requestId: string, agentId: string, toolFormat: ToolFormat = 'hermes'): GenerateMessage {
  return toChatGeneration(request, requestId, agentId, toolFormat).message;
}
