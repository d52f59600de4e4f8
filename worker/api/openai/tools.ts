/**
 * OpenAI chat's tool calling and structured output: the `tools`, `tool_choice` and `response_format`
 * fields, and what they make of a request — the tools the prompt tells the model of, the grammar the
 * sampler follows (a forced call in the model's own syntax, or JSON), and whether the output is parsed
 * for calls (worker/tools/tool-calls.ts). Calls go back out as `message.tool_calls` / `delta.tool_calls`.
 */
import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import { BadRequestError } from '../../../shared/errors.js';
import type { ToolDefinition } from '../../../shared/protocol/messages.js';
import type { ToolFormat } from '../../tools/format.js';
import { jsonObjectGrammar, jsonSchemaGrammar } from '../../tools/json-grammar.js';
import type { ParsedToolCall } from '../../tools/tool-calls.js';
import { toolChoiceGrammar, toolsForPrompt, type ToolChoice } from '../../tools/tool-choice.js';

/** OpenAI's rule for function names. */
const functionName = z.string().regex(/^[a-zA-Z0-9_-]{1,64}$/, 'function names are 1 to 64 letters, digits, underscores or dashes');
const jsonSchema = z.record(z.string(), z.unknown(), { error: 'expected a JSON Schema object' });

export const toolsField = z
  .array(
    z.object({
      type: z.literal('function', "only tools of type 'function' are supported"),
      function: z.object({
        name: functionName,
        description: z.string().nullish(),
        parameters: jsonSchema.nullish(),
        /** Arguments always follow the schema when a call is forced; `strict` is accepted as documented. */
        strict: z.boolean().nullish(),
      }),
    }),
  )
  .max(128, 'at most 128 tools')
  .superRefine((tools, context) => {
    // A call names its function: two of one name would make the call ambiguous.
    const seen = new Set<string>();
    tools.forEach((tool, index) => {
      if (seen.has(tool.function.name))
        context.addIssue({ code: 'custom', path: [index, 'function', 'name'], message: `function names must be unique; '${tool.function.name}' is given twice` });
      seen.add(tool.function.name);
    });
  });

export const toolChoiceField = z.union([z.enum(['none', 'auto', 'required']), z.object({ type: z.literal('function'), function: z.object({ name: z.string().min(1) }) })], {
  error: "expected 'none', 'auto', 'required' or {type: 'function', function: {name}}",
});

export const responseFormatField = z.discriminatedUnion(
  'type',
  [
    z.object({ type: z.literal('text') }),
    z.object({ type: z.literal('json_object') }),
    z.object({
      type: z.literal('json_schema'),
      json_schema: z.object({ name: functionName, description: z.string().nullish(), schema: jsonSchema.nullish(), strict: z.boolean().nullish() }),
    }),
  ],
  { error: "expected a response_format of type 'text', 'json_object' or 'json_schema'" },
);

/** An assistant message's earlier calls, sent back in the conversation. */
export const assistantToolCall = z.object({
  id: z.string().min(1),
  type: z.literal('function'),
  function: z.object({ name: z.string().min(1), arguments: z.string() }),
});

export interface ToolFields {
  tools?: z.infer<typeof toolsField> | null | undefined;
  tool_choice?: z.infer<typeof toolChoiceField> | null | undefined;
  response_format?: z.infer<typeof responseFormatField> | null | undefined;
}

/** What the tool and format fields make of a request. */
export interface ToolUse {
  /** The tools the prompt tells the model of. */
  promptTools: ToolDefinition[];
  grammar?: string;
  /** Parse the output for calls in this syntax; undefined: the output is all text. */
  parseFormat?: ToolFormat;
}

function toolDefinitions(tools: ToolFields['tools']): ToolDefinition[] {
  return (tools ?? []).map(({ function: fn }) => ({
    name: fn.name,
    ...(fn.description === null || fn.description === undefined ? {} : { description: fn.description }),
    ...(fn.parameters === null || fn.parameters === undefined ? {} : { parameters: fn.parameters }),
  }));
}

/** OpenAI's default: `auto` with tools, `none` without. A choice that needs tools needs them listed. */
function toolChoiceOf(request: ToolFields, tools: ToolDefinition[]): ToolChoice {
  const choice = request.tool_choice;
  if (choice === null || choice === undefined) return { kind: tools.length > 0 ? 'auto' : 'none' };
  if (choice === 'none' || choice === 'auto') return { kind: choice };
  if (tools.length === 0) throw new BadRequestError("Invalid 'tool_choice': a tool can only be required when 'tools' lists some.", 'tool_choice');
  if (choice === 'required') return { kind: 'required' };
  const name = choice.function.name;
  if (!tools.some((tool) => tool.name === name)) throw new BadRequestError(`Invalid 'tool_choice': the function '${name}' is not among the request's tools.`, 'tool_choice');
  return { kind: 'tool', name };
}

function formatGrammar(format: ToolFields['response_format']): string | undefined {
  if (format === null || format === undefined || format.type === 'text') return undefined;
  if (format.type === 'json_object') return jsonObjectGrammar();
  return jsonSchemaGrammar(format.json_schema.schema ?? { type: 'object' }, 'response_format.json_schema.schema');
}

/** Tools, tool choice and response format, checked together; `format` is how the served model writes calls. */
export function toolUse(request: ToolFields, format: ToolFormat): ToolUse {
  const tools = toolDefinitions(request.tools);
  const choice = toolChoiceOf(request, tools);
  const callGrammar = toolChoiceGrammar(format, tools, choice);
  const jsonGrammar = formatGrammar(request.response_format);
  if (callGrammar !== undefined && jsonGrammar !== undefined) {
    throw new BadRequestError("Invalid 'response_format': it cannot be combined with a tool_choice that forces a call.", 'response_format');
  }
  const grammar = callGrammar ?? jsonGrammar;
  const use: ToolUse = { promptTools: toolsForPrompt(tools, choice) };
  if (grammar !== undefined) use.grammar = grammar;
  if (choice.kind !== 'none' && tools.length > 0) use.parseFormat = format;
  return use;
}

/** OpenAI's shape of one call, with a fresh `call_…` id. */
export interface OpenAIToolCall {
  id: string;
  type: 'function';
  function: { name: string; arguments: string };
}

export function toOpenAIToolCall(call: ParsedToolCall): OpenAIToolCall {
  return { id: `call_${randomBytes(12).toString('hex')}`, type: 'function', function: { name: call.name, arguments: call.arguments } };
}
