/**
 * `tool_choice` (OpenAI) / `tool_choice` (Anthropic) in one shape, and what it means for a request:
 * which tools the prompt tells the model of, and, when a call is required, a grammar that makes the
 * sampler write one in the model's own syntax (tool-calls.ts parses it back), its arguments held to
 * the tool's JSON Schema (json-grammar.ts). `auto` leaves the model free; `none` hides the tools.
 */
import type { ToolDefinition } from '../../shared/protocol/messages.js';
import type { ToolFormat } from './format.js';
import { gbnfLiteral, grammarOf, schemaRules, type JsonSchema } from './json-grammar.js';

export type ToolChoice = { kind: 'auto' } | { kind: 'none' } | { kind: 'required' } | { kind: 'tool'; name: string };

/** The text around a call's arguments in each format, as tool-calls.ts reads it back. */
function callFrame(format: ToolFormat, name: string): { before: string; after: string } {
  const quotedName = JSON.stringify(name);
  switch (format) {
    case 'hermes':
      return { before: `<tool_call>\n{"name": ${quotedName}, "arguments": `, after: '}\n</tool_call>' };
    case 'llama3':
      return { before: `{"name": ${quotedName}, "parameters": `, after: '}' };
    case 'mistral':
      return { before: `[TOOL_CALLS][{"name": ${quotedName}, "arguments": `, after: '}]' };
  }
}

/** A tool without parameters takes an object all the same (OpenAI's and Anthropic's convention). */
function parametersSchema(tool: ToolDefinition): JsonSchema {
  return tool.parameters ?? { type: 'object' };
}

/**
 * GBNF forcing a call in the model's syntax (arguments constrained by the tool's JSON Schema, via
 * worker/tools/json-grammar.ts), or undefined when the model is free to answer in text (auto / none).
 * `required` allows any one of the tools; a named tool must be among `tools` (the API layer checks,
 * naming its own parameter).
 */
export function toolChoiceGrammar(format: ToolFormat, tools: readonly ToolDefinition[], choice: ToolChoice): string | undefined {
  if (choice.kind === 'auto' || choice.kind === 'none') return undefined;
  const chosen = choice.kind === 'tool' ? tools.filter((tool) => tool.name === choice.name) : tools;
  if (chosen.length === 0) throw new Error(`toolChoiceGrammar: no tool to call (${choice.kind === 'tool' ? choice.name : 'no tools'})`);
  const alternatives: string[] = [];
  const ruleSets: string[][] = [];
  const budget = { rules: 0, literals: 0 }; // one allowance for all the tools' schemas together
  chosen.forEach((tool, index) => {
    const args = schemaRules(parametersSchema(tool), `call-${index}-arguments`, 'tools', budget);
    const frame = callFrame(format, tool.name);
    alternatives.push(`${gbnfLiteral(frame.before)} ${args.root} ${gbnfLiteral(frame.after)}`);
    ruleSets.push(args.rules);
  });
  return grammarOf(alternatives.map((alternative) => `(${alternative})`).join(' | '), ...ruleSets);
}

/** The tools to render into the prompt: none for `none` (the model is told of no tools), all otherwise. */
export function toolsForPrompt(tools: readonly ToolDefinition[], choice: ToolChoice): ToolDefinition[] {
  return choice.kind === 'none' ? [] : [...tools];
}
