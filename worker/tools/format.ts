/**
 * Which tool-call format a model writes, read from its chat template: the template is what taught
 * the model its tools syntax, so it is the one reliable signal (llama.cpp's common/chat.cpp detects
 * formats the same way). A model without a template, or whose template knows no tools, gets Hermes:
 * our fallback template (ChatML) is the one Qwen and Hermes models were trained on.
 */
import type { ModelSummary } from '../../shared/protocol/messages.js';

export type ToolFormat = ModelSummary['toolFormat'];

export function detectToolFormat(chatTemplate: string | null): ToolFormat {
  if (chatTemplate === null) return 'hermes';
  if (chatTemplate.includes('[TOOL_CALLS]')) return 'mistral';
  if (chatTemplate.includes('<tool_call>')) return 'hermes';
  if (chatTemplate.includes('<|start_header_id|>') && (chatTemplate.includes('<|python_tag|>') || chatTemplate.includes('ipython'))) return 'llama3';
  return 'hermes';
}
