/**
 * Renders chat messages with the model's own Jinja template (GGUF `tokenizer.chat_template`) through
 * @huggingface/jinja, the same engine transformers.js uses — llama.cpp's llama_chat_apply_template
 * only knows a fixed list of templates. A model without a template gets ChatML, as llama-server does.
 */
import { Template } from '@huggingface/jinja';
import type { ChatMessage, ToolDefinition } from '../../shared/protocol/messages.js';
import { BadRequestError } from '../../shared/errors.js';

const chatMlTemplate =
  "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

export interface TemplateTokens {
  bos: string;
  eos: string;
}

export class ChatTemplate {
  private readonly template: Template;

  constructor(
    source: string | null,
    private readonly tokens: TemplateTokens,
  ) {
    this.template = new Template(source ?? chatMlTemplate);
  }

  /** The prompt text for the next assistant turn. `developer` is OpenAI's newer name for `system`. */
  render(messages: readonly ChatMessage[], tools?: readonly ToolDefinition[]): string {
    const normalized = messages.map((m) => ({ role: m.role === 'developer' ? 'system' : m.role, content: m.content }));
    try {
      return this.template.render({
        messages: normalized,
        add_generation_prompt: true,
        ...(tools === undefined || tools.length === 0 ? {} : { tools: tools.map((tool) => ({ type: 'function', function: tool })) }),
        bos_token: this.tokens.bos,
        eos_token: this.tokens.eos,
      });
    } catch (error) {
      // Templates raise on conversations they do not support (e.g. roles out of order).
      throw new BadRequestError(`the model's chat template rejected these messages: ${(error as Error).message}`, 'messages');
    }
  }
}
