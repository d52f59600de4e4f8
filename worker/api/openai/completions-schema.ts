/**
 * The body of `POST /v1/completions` (OpenAI's legacy completions), checked by zod and mapped to a
 * protocol `generate` message whose input is the raw prompt: no chat template. It takes the chat
 * route's sampling, stop and streaming fields (schema.ts). What we do not implement is refused
 * with a 400 naming the field rather than silently answered differently: several prompts or token
 * arrays in `prompt`, `echo`, `logprobs`, `best_of` > 1 and `suffix`. A field OpenAI does not document
 * is refused as OpenAI refuses it ("Unrecognized request argument supplied").
 */
import { z } from 'zod';
import type { GenerateMessage } from '../../../shared/protocol/messages.js';
import { commonFields, parseOpenAIBody, toOpenAIGenerateMessage } from './schema.js';

const notSupported = (what: string): string => `${what} is not supported by this server`;

/** Why a `prompt` that is not one string (or an array of one string) is refused. */
function promptProblem(value: unknown): string {
  if (value === undefined || value === null) return 'a prompt is required';
  if (!Array.isArray(value)) return 'expected a string';
  if (value.some((item) => typeof item !== 'string')) return notSupported('a prompt of token ids') + '; send the prompt as a string';
  return notSupported('more than one prompt per request') + '; send one string';
}

/** One string, or an array of exactly one string; anything else is one 400 naming `prompt` itself. */
const prompt = z.unknown().transform((value, context) => {
  if (typeof value === 'string') return value;
  if (Array.isArray(value) && value.length === 1 && typeof value[0] === 'string') return value[0];
  context.addIssue({ code: 'custom', message: promptProblem(value) });
  return z.NEVER;
});

export const completionRequestSchema = z.strictObject({
  ...commonFields,
  prompt,
  echo: z.literal(false, notSupported('echo')).nullish(),
  logprobs: z.null(notSupported('logprobs')).optional(),
  best_of: z.literal(1, notSupported('best_of > 1')).nullish(),
  suffix: z.null(notSupported('suffix')).optional(),
});

export type CompletionRequest = z.infer<typeof completionRequestSchema>;

/** Throws BadRequestError naming the first offending field. */
export function parseCompletionRequest(body: unknown): CompletionRequest {
  return parseOpenAIBody(completionRequestSchema, body);
}

export function toCompletionGenerateMessage(request: CompletionRequest, requestId: string, agentId: string): GenerateMessage {
  return toOpenAIGenerateMessage(request, { kind: 'text', prompt: request.prompt }, request.max_tokens, requestId, agentId);
}
