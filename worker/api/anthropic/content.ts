/**
 * An Anthropic conversation (system, turns of content blocks) as the chat template sees it: protocol
 * chat messages. `tool_use` blocks become the assistant message's tool calls, `tool_result` blocks
 * become `tool` messages, so each model's own template renders them in the syntax it was trained on.
 *
 * Calls and results must pair up as the real API demands (every call answered in the next user turn,
 * no result without its call): a template given an unpaired call renders a conversation the model
 * never saw in training, so a clear 400 beats a quietly worse answer.
 */
import { BadRequestError } from '../../../shared/errors.js';
import type { ChatMessage, ToolCall } from '../../../shared/protocol/messages.js';
import type { AnthropicMessage, ContentBlock, CountTokensRequest } from './schema.js';
import { checkThinkingBlock } from './thinking.js';

type TextBlocks = string | ({ type: 'text'; text: string } | { type: 'tool_reference' })[];

/**
 * Blocks are joined with newlines, as the OpenAI route joins parts: one conversation, one prompt. A
 * tool_reference has no text: it puts its tool's definition among the prompt's tools (schema.ts).
 */
function joinText(value: TextBlocks): string {
  return typeof value === 'string' ? value : value.flatMap((block) => (block.type === 'text' ? [block.text] : [])).join('\n');
}

/** One block and where the request had it, for errors naming the field. */
interface Located<B> {
  block: B;
  path: string;
}

/** A turn after merging consecutive turns of one role, as the real API does. */
interface Turn {
  role: 'user' | 'assistant';
  /** Where the turn's first message was. */
  path: string;
  blocks: Located<ContentBlock>[];
}

type SystemMessage = Extract<AnthropicMessage, { role: 'system' }>;

/** A system message's text, or undefined where it is not shown any more (`clear_at`) or has none. */
function systemText(m: SystemMessage, i: number, messages: readonly AnthropicMessage[]): string | undefined {
  if (m.clear_at === 'next_user_message' && messages.slice(i + 1).some((later) => later.role === 'user')) return undefined;
  const text = m.content === undefined ? '' : joinText(m.content);
  return text === '' ? undefined : text;
}

/** Turns of one role merged; a system message in the conversation stands as its own turn. */
function mergeTurns(messages: readonly AnthropicMessage[]): (Turn | ChatMessage)[] {
  const turns: (Turn | ChatMessage)[] = [];
  for (const [i, m] of messages.entries()) {
    const path = `messages.${i}`;
    if (m.role === 'system') {
      const text = systemText(m, i, messages);
      if (text !== undefined) turns.push({ role: 'system', content: text });
      continue;
    }
    const blocks: Located<ContentBlock>[] =
      typeof m.content === 'string'
        ? [{ block: { type: 'text', text: m.content }, path: `${path}.content` }]
        : m.content.map((block, j) => ({ block, path: `${path}.content.${j}` }));
    const last = turns.at(-1);
    if (last !== undefined && 'blocks' in last && last.role === m.role) last.blocks.push(...blocks);
    else turns.push({ role: m.role, path, blocks });
  }
  return turns;
}

function wrongTurn(located: Located<ContentBlock>, role: string): never {
  const param = `${located.path}.type`;
  throw new BadRequestError(`${param}: '${located.block.type}' blocks are not allowed in ${role} turns`, param);
}

/**
 * The assistant turn: its text, its calls with arguments as compact JSON text, and its thinking as the
 * turn's reasoning (the template's `reasoning_content`, as the OpenAI route passes it; the template
 * decides whether to render it). A thinking block this server signed must come back unmodified
 * (thinking.ts); a redacted one's data cannot be read and is dropped.
 */
function assistantMessage(turn: Turn): ChatMessage {
  const texts: string[] = [];
  const calls: ToolCall[] = [];
  const thoughts: string[] = [];
  for (const located of turn.blocks) {
    const { block } = located;
    if (block.type === 'text') texts.push(block.text);
    else if (block.type === 'tool_use') calls.push({ id: block.id, name: block.name, arguments: JSON.stringify(block.input) });
    else if (block.type === 'thinking') {
      checkThinkingBlock(block, located.path);
      if (block.thinking !== '') thoughts.push(block.thinking);
    } else if (block.type !== 'redacted_thinking') wrongTurn(located, 'assistant');
  }
  return {
    role: 'assistant',
    content: texts.join('\n'),
    ...(calls.length === 0 ? {} : { toolCalls: calls }),
    ...(thoughts.length === 0 ? {} : { reasoning: thoughts.join('\n') }),
  };
}

/** `is_error` results are told to the model as errors: it has no other way to see the flag. */
function toolResultText(block: Extract<ContentBlock, { type: 'tool_result' }>): string {
  const text = block.content === undefined ? '' : joinText(block.content);
  return block.is_error === true ? `Error: ${text}` : text;
}

/**
 * The user turn: its tool results first, as `tool` messages answering the previous turn's calls (by id,
 * with the tool's name), then its text as one user message, if it has text or nothing else.
 */
function userMessages(turn: Turn, calls: readonly ToolCall[]): ChatMessage[] {
  const results: ChatMessage[] = [];
  const texts: string[] = [];
  for (const located of turn.blocks) {
    const { block } = located;
    if (block.type === 'text') texts.push(block.text);
    else if (block.type === 'tool_result') results.push(toolMessage(located as Located<typeof block>, calls));
    else wrongTurn(located, 'user');
  }
  const unanswered = calls.filter((call) => !results.some((r) => r.toolCallId === call.id));
  if (unanswered.length > 0) {
    throw new BadRequestError(
      `${turn.path}: tool_use ids were found without tool_result blocks immediately after: ${unanswered.map((c) => c.id).join(', ')}. Each tool_use block must have a corresponding tool_result block in the next message.`,
      turn.path,
    );
  }
  const text = texts.length === 0 && results.length === 0 ? [''] : texts;
  return [...results, ...(text.length === 0 ? [] : [{ role: 'user' as const, content: text.join('\n') }])];
}

function toolMessage(located: Located<Extract<ContentBlock, { type: 'tool_result' }>>, calls: readonly ToolCall[]): ChatMessage {
  const { block } = located;
  const call = calls.find((c) => c.id === block.tool_use_id);
  if (call === undefined) {
    const param = `${located.path}.tool_use_id`;
    throw new BadRequestError(
      `${param}: unexpected tool_use_id found in tool_result blocks: ${block.tool_use_id}. Each tool_result block must have a corresponding tool_use block in the previous message.`,
      param,
    );
  }
  return { role: 'tool', content: toolResultText(block), toolCallId: call.id, name: call.name };
}

/**
 * The conversation as the chat template sees it: `system` first, then the turns. Consecutive turns
 * of one role are merged, as the real API does. A final assistant turn would be a prefill the model
 * continues; the template closes every turn, so that is refused rather than answered wrongly.
 */
export function chatMessages(request: CountTokensRequest): ChatMessage[] {
  const final = request.messages.length - 1;
  if (request.messages[final]?.role === 'assistant') {
    throw new BadRequestError(`messages.${final}.role: a final assistant message (prefill) is not supported by this server yet`, `messages.${final}.role`);
  }
  const out: ChatMessage[] = [];
  const system = request.system === null || request.system === undefined ? '' : joinText(request.system);
  if (system !== '') out.push({ role: 'system', content: system });
  let calls: readonly ToolCall[] = [];
  for (const turn of mergeTurns(request.messages)) {
    if (!('blocks' in turn)) out.push(turn);
    else if (turn.role === 'assistant') {
      const message = assistantMessage(turn);
      calls = message.toolCalls ?? [];
      out.push(message);
    } else {
      out.push(...userMessages(turn, calls));
      calls = [];
    }
  }
  // Only system messages without text (cleared or empty): nothing to prompt with, and the engine takes no empty conversation.
  if (out.length === 0) throw new BadRequestError('messages: at least one message with content is required', 'messages');
  return out;
}
