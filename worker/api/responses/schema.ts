/**
 * The body of `POST /v1/responses` (and of `POST /v1/responses/input_tokens`), as the `openai` SDK's
 * `ResponseCreateParams` types it, checked by zod. As on chat completions, the body is strict: a field
 * the SDK does not type is OpenAI's 400 "Unrecognized request argument supplied"; every typed field is
 * accepted, and one we cannot honour but at its default (hosted tools, images, `background`, a stored
 * `prompt`, a `conversation` object) is a 400 naming it. Items are not strict: clients send back the
 * output items they got, with their ids and statuses. `null` counts as absent.
 */
import { z } from 'zod';
import { reasoningEfforts } from '../reasoning-effort.js';
import { badRequestOf, type IssueWording } from '../request-checks.js';

const notSupported = (what: string): string => `${what} is not supported by this server`;

/** A part or item type we cannot honour: refused naming where it is. */
const refusedType = <T extends string>(type: T, what: string) =>
  z.object({ type: z.literal(type) }).superRefine((_, context) => {
    context.addIssue({ code: 'custom', message: notSupported(what) });
  });

const contentPart = z.discriminatedUnion(
  'type',
  [
    z.object({ type: z.literal('input_text'), text: z.string() }),
    z.object({ type: z.literal('output_text'), text: z.string() }),
    z.object({ type: z.literal('refusal'), refusal: z.string() }),
    refusedType('input_image', 'image input'),
    refusedType('input_file', 'file input'),
    refusedType('input_audio', 'audio input'),
  ],
  { error: "expected a content part of type 'input_text', 'output_text' or 'refusal'" },
);
export type ContentPart = z.infer<typeof contentPart>;

const content = z.union([z.string(), z.array(contentPart)], { error: 'expected a string or an array of content parts' });

const messageItem = z.object({ type: z.literal('message'), role: z.enum(['user', 'assistant', 'system', 'developer']), content });
const functionCallItem = z.object({ type: z.literal('function_call'), call_id: z.string().min(1), name: z.string().min(1), arguments: z.string() });
const functionCallOutputItem = z.object({ type: z.literal('function_call_output'), call_id: z.string().min(1), output: content });
const textOf = <T extends string>(type: T) => z.object({ type: z.literal(type), text: z.string() });
/** Earlier reasoning sent back (the SDK's `ResponseReasoningItem`): its text is the assistant turn's reasoning. */
const reasoningItem = z.object({
  type: z.literal('reasoning'),
  summary: z.array(textOf('summary_text')).nullish(),
  content: z.array(textOf('reasoning_text')).nullish(),
  encrypted_content: z.string().nullish(),
});

const item = z.preprocess(
  // EasyInputMessage may leave `type` out.
  (value) => (typeof value === 'object' && value !== null && !('type' in value) && 'role' in value ? { ...value, type: 'message' } : value),
  z.discriminatedUnion('type', [messageItem, functionCallItem, functionCallOutputItem, reasoningItem, refusedType('item_reference', 'item_reference (send the item itself)')], {
    error: "expected an item of type 'message', 'function_call', 'function_call_output' or 'reasoning'; other item types are not supported by this server",
  }),
);
export type InputItem = z.infer<typeof item>;

/** OpenAI's rule for function names. */
const functionName = z.string().regex(/^[a-zA-Z0-9_-]{1,64}$/, 'function names are 1 to 64 letters, digits, underscores or dashes');
const jsonSchema = z.record(z.string(), z.unknown(), { error: 'expected a JSON Schema object' });

/** Flat, unlike chat's `{type, function: {…}}`. */
const functionTool = z.object({
  type: z.literal('function', "only tools of type 'function' are supported by this server"),
  name: functionName,
  description: z.string().nullish(),
  parameters: jsonSchema.nullish(),
  strict: z.boolean().nullish(),
});
export type FunctionTool = z.infer<typeof functionTool>;

const toolChoice = z.union([z.enum(['none', 'auto', 'required']), z.object({ type: z.literal('function'), name: z.string().min(1) })], {
  error: "expected 'none', 'auto', 'required' or {type: 'function', name}",
});

const textFormat = z.discriminatedUnion(
  'type',
  [
    z.object({ type: z.literal('text') }),
    z.object({ type: z.literal('json_object') }),
    z.object({ type: z.literal('json_schema'), name: functionName, schema: jsonSchema, description: z.string().nullish(), strict: z.boolean().nullish() }),
  ],
  { error: "expected a format of type 'text', 'json_object' or 'json_schema'" },
);
export type TextFormat = z.infer<typeof textFormat>;

const summaryKind = z.enum(['auto', 'concise', 'detailed']);

/** Fields both routes read. */
const conversationFields = {
  model: z.string().min(1).nullish(),
  input: z.union([z.string(), z.array(item)], { error: 'expected a string or an array of input items' }).nullish(),
  instructions: z.string().nullish(),
  previous_response_id: z.string().min(1).nullish(),
  tools: z.array(functionTool).max(128, 'at most 128 tools').nullish(),
  tool_choice: toolChoice.nullish(),
  parallel_tool_calls: z.boolean().nullish(),
  text: z.object({ format: textFormat.nullish(), verbosity: z.enum(['low', 'medium', 'high']).nullish() }).nullish(),
  /** `effort` bounds a reasoning model's think block (reasoning-effort.ts); no summary is written, whatever is asked. */
  reasoning: z.object({ effort: z.enum(reasoningEfforts).nullish(), summary: summaryKind.nullish(), generate_summary: summaryKind.nullish() }).nullish(),
  truncation: z.enum(['auto', 'disabled']).nullish(),
  conversation: z.null(notSupported("'conversation' (use previous_response_id)")).optional(),
};

/** Typed fields that change nothing we compute: accepted, as OpenAI accepts them. */
const acceptedFields = {
  metadata: z.record(z.string(), z.string()).nullish(),
  user: z.string().nullish(),
  include: z.array(z.string()).nullish(),
  prompt_cache_key: z.string().nullish(),
  prompt_cache_retention: z.enum(['in-memory', '24h']).nullish(),
  safety_identifier: z.string().nullish(),
  service_tier: z.enum(['auto', 'default', 'flex', 'scale', 'priority']).nullish(),
  stream_options: z.object({ include_obfuscation: z.boolean().nullish() }).nullish(),
  context_management: z.array(z.object({ type: z.string() })).nullish(),
  max_tool_calls: z.number().int().positive().nullish(),
};

export const responseCreateSchema = z
  .strictObject({
    ...conversationFields,
    ...acceptedFields,
    max_output_tokens: z.number().int().positive().nullish(),
    temperature: z.number().min(0).max(2).nullish(),
    top_p: z.number().gt(0).max(1).nullish(),
    store: z.boolean().nullish(),
    stream: z.boolean().nullish(),
    background: z.literal(false, notSupported('background responses')).nullish(),
    prompt: z.null(notSupported('stored prompts')).optional(),
    top_logprobs: z.literal(0, notSupported('top_logprobs')).nullish(),
  })
  .superRefine((body, context) => {
    if (body.include?.includes('message.output_text.logprobs') === true) context.addIssue({ code: 'custom', path: ['include'], message: notSupported('output logprobs') });
  });
export type ResponseCreateRequest = z.infer<typeof responseCreateSchema>;

export const inputTokensSchema = z.strictObject(conversationFields);
export type InputTokensRequest = z.infer<typeof inputTokensSchema>;

/** Either route's body: what makes up the conversation. */
export type ConversationRequest = InputTokensRequest;

/** OpenAI's own wording, for a field it does not know too. */
const openAIWording: IssueWording = {
  unknownField: (param) => `Unrecognized request argument supplied: ${param}`,
  badField: (param, message) => `Invalid '${param}': ${message}`,
};

/** Throws BadRequestError naming the first offending field. */
export function parseResponsesBody<T>(schema: z.ZodType<T>, body: unknown): T {
  const parsed = schema.safeParse(body);
  if (!parsed.success) throw badRequestOf(parsed.error, openAIWording);
  return parsed.data;
}
