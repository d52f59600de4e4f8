/**
 * A Responses conversation in the protocol's chat messages: the stored history of the chain
 * (`previous_response_id`), then this request's input items. `instructions` open the prompt as a
 * system message but are not part of the history, as in OpenAI's API: a follow-up turn's instructions
 * replace the previous turn's, they are not carried over. Consecutive `function_call` items are the
 * calls of one assistant turn; a `function_call_output` is a tool message told its call's name.
 * A `reasoning` item opens the assistant turn whose message and calls follow it, as that turn's
 * reasoning: the template decides whether to render it (Qwen3's keeps it only within a tool loop, for
 * turns after the last user message).
 */
import type { ChatMessage } from '../../../shared/protocol/messages.js';
import { reasoningFromCarried, type OutputItem } from './bodies.js';
import type { ContentPart, InputItem } from './schema.js';

type ReasoningInput = Extract<InputItem, { type: 'reasoning' }>;

/** Text parts are joined with newlines, as chat completions join them. */
function contentText(content: string | ContentPart[]): string {
  if (typeof content === 'string') return content;
  return content.map((part) => ('text' in part ? part.text : 'refusal' in part ? part.refusal : '')).join('\n');
}

/** A call goes on the assistant turn just before it, or opens one. */
function addCall(messages: ChatMessage[], call: { call_id: string; name: string; arguments: string }): void {
  const last = messages.at(-1);
  const turn: ChatMessage = last?.role === 'assistant' ? last : { role: 'assistant', content: '' };
  if (turn !== last) messages.push(turn);
  turn.toolCalls = [...(turn.toolCalls ?? []), { id: call.call_id, name: call.name, arguments: call.arguments }];
}

/** The reasoning's own text, or the text our `encrypted_content` carries back; summaries are not the reasoning. */
function reasoningText(item: ReasoningInput): string {
  const text = (item.content ?? []).map((part) => part.text).join('');
  if (text !== '' || item.encrypted_content === null || item.encrypted_content === undefined) return text;
  return reasoningFromCarried(item.encrypted_content) ?? '';
}

/** An assistant turn opened by reasoning alone, waiting for its message or calls. */
const onlyReasoning = (message: ChatMessage | undefined): message is ChatMessage =>
  message?.role === 'assistant' && message.reasoning !== undefined && message.content === '' && message.toolCalls === undefined;

/** An assistant message completes the turn its reasoning opened, or is a turn of its own. */
function addAssistantText(messages: ChatMessage[], text: string): void {
  const last = messages.at(-1);
  if (onlyReasoning(last)) last.content = text;
  else messages.push({ role: 'assistant', content: text });
}

/** The calls named so far in `messages`, by call id. */
function callNames(messages: readonly ChatMessage[]): Map<string, string> {
  const names = new Map<string, string>();
  for (const message of messages) for (const call of message.toolCalls ?? []) names.set(call.id, call.name);
  return names;
}

/** `input` appended to `history`; a string is one user message. */
export function appendInput(history: readonly ChatMessage[], input: string | InputItem[] | null | undefined): ChatMessage[] {
  const messages = structuredClone([...history]);
  if (input === null || input === undefined) return messages;
  if (typeof input === 'string') return [...messages, { role: 'user', content: input }];
  for (const item of input) {
    if (item.type === 'message' && item.role === 'assistant') addAssistantText(messages, contentText(item.content));
    else if (item.type === 'message') messages.push({ role: item.role, content: contentText(item.content) });
    else if (item.type === 'function_call') addCall(messages, item);
    else if (item.type === 'function_call_output') {
      const name = callNames(messages).get(item.call_id);
      messages.push({ role: 'tool', content: contentText(item.output), toolCallId: item.call_id, ...(name === undefined ? {} : { name }) });
    } else if (item.type === 'reasoning') {
      const text = reasoningText(item);
      if (text !== '') messages.push({ role: 'assistant', content: '', reasoning: text });
    }
  }
  // Reasoning that nothing followed is no turn: the prompt must end where the model answers.
  if (input.at(-1)?.type === 'reasoning' && onlyReasoning(messages.at(-1))) messages.pop();
  return messages;
}

/** The prompt's messages: the instructions first, when given. */
export function promptMessages(instructions: string | null | undefined, conversation: readonly ChatMessage[]): ChatMessage[] {
  return instructions === null || instructions === undefined ? [...conversation] : [{ role: 'system', content: instructions }, ...conversation];
}

/** A response's output as the assistant turn the next prompt renders: its reasoning, text and calls. */
export function assistantTurn(output: readonly OutputItem[]): ChatMessage {
  const turn: ChatMessage = { role: 'assistant', content: '' };
  for (const item of output) {
    if (item.type === 'reasoning') turn.reasoning = item.content.map((part) => part.text).join('');
    else if (item.type === 'message') turn.content += item.content.map((part) => part.text).join('');
    else turn.toolCalls = [...(turn.toolCalls ?? []), { id: item.call_id, name: item.name, arguments: item.arguments }];
  }
  return turn;
}
