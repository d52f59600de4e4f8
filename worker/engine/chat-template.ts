/**
 * Renders chat messages with the model's own Jinja template (GGUF `tokenizer.chat_template`) through
 * @huggingface/jinja, the same engine transformers.js uses — llama.cpp's llama_chat_apply_template
 * only knows a fixed list of templates, and its tool-aware renderer (common/chat.cpp) is not in the
 * libraries we link. Messages are handed over in Hugging Face's convention, which model templates are
 * written against: assistant `tool_calls: [{id, type, function: {name, arguments: <object>}}]`, tool
 * results `{role: 'tool', content, tool_call_id, name}`, tools as `[{type: 'function', function}]`.
 *
 * A model without a template gets ChatML with tools in Hermes syntax (the Qwen 2.5 template's way:
 * tools in the system turn, calls as `<tool_call>` blocks, results as `<tool_response>` in a user
 * turn). A template that knows no tools gets the same text spliced in (as llama.cpp's minja polyfills
 * do), so the model is told of its tools whatever its template.
 */
import { Template } from '@huggingface/jinja';
import { createHash } from 'node:crypto';
import type { ChatMessage, ToolDefinition } from '../../shared/protocol/messages.js';
import { BadRequestError } from '../../shared/errors.js';
import { MAX_JSON_DEPTH, nestsDeeperThan } from '../../shared/json-depth.js';
import { detectToolFormat } from '../tools/format.js';
import { reasoningStartOf, templateReasons, type ReasoningStarts } from '../tools/reasoning.js';

/** Qwen 2.5's tools preamble, word for word: what Hermes-format models were trained to read. */
const toolsPreamble =
  '{{- "# Tools\\n\\nYou may call one or more functions to assist with the user query.\\n\\nYou are provided with function signatures within <tools></tools> XML tags:\\n<tools>" }}' +
  '{%- for tool in tools %}{{- "\\n" }}{{- tool | tojson }}{%- endfor %}' +
  '{{- "\\n</tools>\\n\\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\\n<tool_call>\\n{\\"name\\": <function-name>, \\"arguments\\": <args-json-object>}\\n</tool_call>" }}';

/** ChatML; without tools it renders exactly as plain ChatML (no default system prompt). */
const chatMlTemplate =
  "{%- if tools %}{{- '<|im_start|>system\\n' }}{%- if messages[0].role == 'system' %}{{- messages[0].content + '\\n\\n' }}{%- endif %}" +
  toolsPreamble +
  "{{- '<|im_end|>\\n' }}{%- elif messages[0].role == 'system' %}{{- '<|im_start|>system\\n' + messages[0].content + '<|im_end|>\\n' }}{%- endif %}" +
  '{%- for message in messages %}' +
  "{%- if message.role == 'user' or (message.role == 'system' and not loop.first) or (message.role == 'assistant' and not message.tool_calls) %}" +
  "{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}" +
  "{%- elif message.role == 'assistant' %}{{- '<|im_start|>assistant' }}{%- if message.content %}{{- '\\n' + message.content }}{%- endif %}" +
  '{%- for tool_call in message.tool_calls %}' +
  '{{- \'\\n<tool_call>\\n{"name": "\' + tool_call.function.name + \'", "arguments": \' + (tool_call.function.arguments | tojson) + \'}\\n</tool_call>\' }}' +
  "{%- endfor %}{{- '<|im_end|>\\n' }}" +
  "{%- elif message.role == 'tool' %}{%- if loop.first or messages[loop.index0 - 1].role != 'tool' %}{{- '<|im_start|>user' }}{%- endif %}" +
  "{{- '\\n<tool_response>\\n' + message.content + '\\n</tool_response>' }}" +
  "{%- if loop.last or messages[loop.index0 + 1].role != 'tool' %}{{- '<|im_end|>\\n' }}{%- endif %}" +
  '{%- endif %}{%- endfor %}' +
  "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}";

const preambleTemplate = new Template(toolsPreamble);
/** Python's json.dumps spacing, as templates' `tojson` writes it (and models learned to). */
const jsonTemplate = new Template('{{ value | tojson }}');

export interface TemplateTokens {
  bos: string;
  eos: string;
}

/** One message as Hugging Face templates expect it. */
type TemplateMessage = Record<string, unknown> & { role: string; content: string };

/** Arguments as the object templates print with `tojson`; text that is not JSON (or nests too deep to print) is passed as is. */
function parsedArguments(text: string): unknown {
  if (nestsDeeperThan(text, MAX_JSON_DEPTH)) return text;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** Mistral's templates refuse call ids other than 9 alphanumerics: others map to a stable 9-character digest. */
function mistralCallId(id: string): string {
  if (/^[A-Za-z0-9]{9}$/.test(id)) return id;
  return createHash('sha256')
    .update(id)
    .digest('base64')
    .replace(/[^A-Za-z0-9]/g, '')
    .slice(0, 9);
}

export class ChatTemplate {
  private readonly template: Template;
  /** The template renders `tools` itself; otherwise the tools preamble is spliced into the system turn. */
  private readonly rendersTools: boolean;
  /** The template renders assistant `tool_calls`; otherwise they are written into the content, Hermes style. */
  private readonly rendersToolCalls: boolean;
  private readonly mapCallId: (id: string) => string;
  /** Null: the template does not reason. Otherwise where output starts with thinking on and off. */
  readonly reasoning: ReasoningStarts | null;

  constructor(
    source: string | null,
    private readonly tokens: TemplateTokens,
  ) {
    this.template = new Template(source ?? chatMlTemplate);
    this.rendersTools = source === null || /\btools\b/.test(source);
    this.rendersToolCalls = source === null || source.includes('tool_calls');
    this.mapCallId = detectToolFormat(source) === 'mistral' ? mistralCallId : (id) => id;
    this.reasoning = templateReasons(source) ? this.probeReasoning() : null;
  }

  /**
   * The prompt text for the next assistant turn. `developer` is OpenAI's newer name for `system`.
   * `thinking` is passed as `enable_thinking` (Qwen3's switch); undefined leaves the template's default.
   */
  render(messages: readonly ChatMessage[], tools?: readonly ToolDefinition[], thinking?: boolean): string {
    const hasTools = tools !== undefined && tools.length > 0;
    let mapped = messages.map((message) => this.templateMessage(message));
    if (hasTools && !this.rendersTools) mapped = withToolsPreamble(mapped, tools);
    try {
      return this.template.render({
        messages: mapped,
        add_generation_prompt: true,
        ...(hasTools ? { tools: tools.map((tool) => ({ type: 'function', function: tool })) } : {}),
        bos_token: this.tokens.bos,
        eos_token: this.tokens.eos,
        ...(thinking === undefined ? {} : { enable_thinking: thinking }),
      });
    } catch (error) {
      // Templates raise on conversations they do not support (e.g. roles out of order).
      throw new BadRequestError(`the model's chat template rejected these messages: ${(error as Error).message}`, 'messages');
    }
  }

  /** Where output starts after a one-message conversation, thinking on and off (a template that cannot render it: as on, from its prompt). */
  private probeReasoning(): ReasoningStarts {
    const probe = (thinking: boolean) => {
      try {
        return reasoningStartOf(this.render([{ role: 'user', content: 'Hi' }], undefined, thinking), thinking);
      } catch {
        return 'may-open';
      }
    };
    return { thinkingOn: probe(true), thinkingOff: probe(false) };
  }

  private templateMessage(message: ChatMessage): TemplateMessage {
    const role = message.role === 'developer' ? 'system' : message.role;
    if (!this.rendersToolCalls && role === 'tool') return { role: 'user', content: `<tool_response>\n${message.content}\n</tool_response>` };
    const mapped: TemplateMessage = { role, content: message.content };
    const calls = message.toolCalls ?? [];
    if (calls.length > 0 && !this.rendersToolCalls) mapped.content = [message.content, ...calls.map(hermesCallText)].filter((part) => part !== '').join('\n');
    else if (calls.length > 0) {
      mapped.tool_calls = calls.map((call) => ({ id: this.mapCallId(call.id), type: 'function', function: { name: call.name, arguments: parsedArguments(call.arguments) } }));
    }
    if (message.toolCallId !== undefined) mapped.tool_call_id = this.mapCallId(message.toolCallId);
    if (message.name !== undefined) mapped.name = message.name;
    if (message.reasoning !== undefined) mapped.reasoning_content = message.reasoning;
    return mapped;
  }
}

/** A call written as Hermes models write it (tool-calls.ts reads it back). */
function hermesCallText(call: { name: string; arguments: string }): string {
  const args = jsonTemplate.render({ value: parsedArguments(call.arguments) });
  return `<tool_call>\n{"name": ${JSON.stringify(call.name)}, "arguments": ${args}}\n</tool_call>`;
}

/** The tools preamble at the end of the first system message, or as a system message of its own. */
function withToolsPreamble(messages: TemplateMessage[], tools: readonly ToolDefinition[]): TemplateMessage[] {
  const preamble = preambleTemplate.render({ tools: tools.map((tool) => ({ type: 'function', function: tool })) });
  const [first, ...rest] = messages;
  if (first?.role === 'system') return [{ ...first, content: `${first.content}\n\n${preamble}` }, ...rest];
  return [{ role: 'system', content: preamble }, ...messages];
}
