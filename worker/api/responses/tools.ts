/**
 * Function tools, `tool_choice` and `text.format` of a Responses request: the same tool use as chat
 * completions (worker/api/openai/tools.ts: the tools the prompt tells the model of, the grammar that
 * forces a call in the model's own syntax, whether the output is parsed for calls), from the
 * Responses API's flat shapes; `text.format` JSON takes chat's `response_format` grammar path.
 */
import { BadRequestError } from '../../../shared/errors.js';
import type { ToolFormat } from '../../tools/format.js';
import { jsonObjectGrammar, jsonSchemaGrammar } from '../../tools/json-grammar.js';
import { toolUse, type ToolFields, type ToolUse } from '../openai/tools.js';
import type { ConversationRequest, TextFormat } from './schema.js';

/** The Responses shapes as chat's: `{type, function: {…}}` tools, `{type, function: {name}}` choice. */
function chatToolFields(request: ConversationRequest): ToolFields {
  const tools = request.tools?.map(({ name, description, parameters, strict }) => ({ type: 'function' as const, function: { name, description, parameters, strict } }));
  const choice = request.tool_choice;
  return {
    tools,
    tool_choice: choice === null || choice === undefined || typeof choice === 'string' ? choice : { type: 'function', function: { name: choice.name } },
  };
}

function formatGrammar(format: TextFormat | null | undefined): string | undefined {
  if (format === null || format === undefined || format.type === 'text') return undefined;
  if (format.type === 'json_object') return jsonObjectGrammar();
  return jsonSchemaGrammar(format.schema, 'text.format.schema');
}

/** Tools, tool choice and text format checked together; `format` is how the served model writes calls. */
export function responsesToolUse(request: ConversationRequest, format: ToolFormat): ToolUse {
  const use = toolUse(chatToolFields(request), format);
  const jsonGrammar = formatGrammar(request.text?.format);
  if (jsonGrammar === undefined) return use;
  if (use.grammar !== undefined) throw new BadRequestError("Invalid 'text.format': it cannot be combined with a tool_choice that forces a call.", 'text.format');
  return { ...use, grammar: jsonGrammar };
}
