/**
 * The body of `POST /v1/chat/completions` (and the fields legacy completions share with it), checked by one zod schema and mapped to the protocol's
 * GenerateMessage. Fields we do not know are ignored (OpenAI-compatible clients send many); fields we
 * know are checked strictly, and a violation is a 400 naming the field's path (`messages.0.role`).
 * `null` counts as absent for optional fields, because OpenAI's SDKs send explicit nulls.
 */
import { z } from 'zod';
import { BadRequestError } from '../../shared/errors.js';
import { deepestIssue } from './request-checks.js';
import type { ChatMessage, GenerateInput, GenerateMessage, SamplingParams } from '../../shared/protocol/messages.js';

/** The protocol (and llama.cpp's sampler) accepts this many stop strings; OpenAI's own limit is 4. */
export const maxStopStrings = 16;

const textPart = z.object({ type: z.literal('text'), text: z.string() });
const content = z.union([z.string(), z.array(textPart)], { error: 'expected a string or an array of text parts' });

const message = z.discriminatedUnion('role', [
  z.object({ role: z.enum(['system', 'developer', 'user', 'tool']), content }),
  z.object({ role: z.literal('assistant'), content: content.nullish() }),
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
};
type CommonRequest = z.infer<z.ZodObject<typeof commonFields>>;

export const chatCompletionRequestSchema = z.object({
  ...commonFields,
  messages: z.array(message).min(1, 'at least one message is required'),
  max_completion_tokens: z.number().int().positive().nullish(),
});

export type ChatCompletionRequest = z.infer<typeof chatCompletionRequestSchema>;

/** OpenAI's defaults, plus llama.cpp's neutral values for the extensions. */
export const defaultSampling: SamplingParams = {
  temperature: 1,
  topP: 1,
  topK: 0,
  minP: 0,
  repeatPenalty: 1,
  frequencyPenalty: 0,
  presencePenalty: 0,
};

function toBadRequest(error: z.ZodError): BadRequestError {
  const first = error.issues[0];
  if (first === undefined) return new BadRequestError('The request body is invalid.');
  const issue = deepestIssue(first);
  if (issue.path.length === 0) return new BadRequestError(`The request body must be a JSON object: ${issue.message}`);
  const param = issue.path.map(String).join('.');
  return new BadRequestError(`Invalid '${param}': ${issue.message}`, param);
}

/** Throws BadRequestError naming the first offending field. */
export function parseOpenAIBody<T>(schema: z.ZodType<T>, body: unknown): T {
  const parsed = schema.safeParse(body);
  if (!parsed.success) throw toBadRequest(parsed.error);
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

export function chatMessages(request: ChatCompletionRequest): ChatMessage[] {
  return request.messages.map((m) => ({ role: m.role, content: contentText(m.content) }));
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

export function toGenerateMessage(request: ChatCompletionRequest, requestId: string, agentId: string): GenerateMessage {
  const input: GenerateInput = { kind: 'chat', messages: chatMessages(request) };
  return toOpenAIGenerateMessage(request, input, request.max_completion_tokens ?? request.max_tokens, requestId, agentId);
}
