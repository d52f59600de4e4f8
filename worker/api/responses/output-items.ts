/**
 * The model's output as Responses API output items, and the stream events that build them, in the
 * order the `openai` SDK's ResponseStream accumulates them: an item is added before its parts, a part
 * before its deltas. Text opens a `message` item (closed when a call follows or generation ends);
 * each parsed call is a whole `function_call` item (added, its arguments as one delta, done). The JSON
 * answer runs the same assembly and keeps only the items, so both answers hold the same output.
 * A reasoning model's think block comes first, as a `reasoning` item whose one `reasoning_text` part
 * streams as `response.reasoning_text.delta` events (the SDK's ResponseStream accumulates those); it
 * closes when the answer's first text or call arrives.
 */
import type { ModelOutput } from '../openai/output.js';
import {
  carriedReasoning,
  newId,
  type FunctionCallItem,
  type ItemStatus,
  type MessageItem,
  type OutputItem,
  type OutputText,
  type ReasoningItem,
  type ReasoningText,
} from './bodies.js';

/** A stream event without its `sequence_number`, which the sink numbers. */
export type ItemEvent = { type: string } & Record<string, unknown>;

const textPart = (text: string): OutputText => ({ type: 'output_text', text, annotations: [], logprobs: [] });
const reasoningPart = (text: string): ReasoningText => ({ type: 'reasoning_text', text });

type Open<T> = { index: number; item: T; text: string };

/** Events carry snapshots: the items change after an event was made. */
const snapshot = <T>(value: T): T => structuredClone(value);

export class OutputAssembler {
  readonly items: OutputItem[] = [];
  /** The message item text goes to, while one is open. */
  private open: Open<MessageItem> | undefined;
  /** The reasoning item, while the think block is being written. */
  private thinking: Open<ReasoningItem> | undefined;

  /** `carry`: the request's `include` asked for `reasoning.encrypted_content`. */
  constructor(private readonly carry = false) {}

  /** Events for what the reader made of the latest text. */
  push(part: ModelOutput): ItemEvent[] {
    const events: ItemEvent[] = [];
    if (part.reasoning !== undefined && part.reasoning !== '') events.push(...this.appendReasoning(part.reasoning));
    if (part.text !== '') events.push(...this.closeReasoning('completed'), ...this.appendText(part.text));
    for (const call of part.calls) {
      events.push(...this.closeReasoning('completed'), ...this.closeMessage('completed'));
      events.push(...this.addCall(call.name, call.arguments));
    }
    return events;
  }

  /** The last events: open items close; an output with no item at all gets an empty message. */
  close(status: Exclude<ItemStatus, 'in_progress'>): ItemEvent[] {
    const events = this.closeReasoning(status);
    if (this.items.length === 0) events.push(...this.openMessage());
    return [...events, ...this.closeMessage(status)];
  }

  private appendReasoning(delta: string): ItemEvent[] {
    const events: ItemEvent[] = [];
    if (this.thinking === undefined) {
      const item: ReasoningItem = { type: 'reasoning', id: newId('rs'), summary: [], content: [], status: 'in_progress' };
      const index = this.items.push(item) - 1;
      this.thinking = { index, item, text: '' };
      events.push({ type: 'response.output_item.added', output_index: index, item: snapshot(item) });
      item.content.push(reasoningPart(''));
      events.push({ type: 'response.content_part.added', item_id: item.id, output_index: index, content_index: 0, part: reasoningPart('') });
    }
    const { item, index } = this.thinking;
    this.thinking.text += delta;
    events.push({ type: 'response.reasoning_text.delta', item_id: item.id, output_index: index, content_index: 0, delta });
    return events;
  }

  private closeReasoning(status: Exclude<ItemStatus, 'in_progress'>): ItemEvent[] {
    const thinking = this.thinking;
    if (thinking === undefined) return [];
    this.thinking = undefined;
    const { item, index, text } = thinking;
    item.content = [reasoningPart(text)];
    if (this.carry) item.encrypted_content = carriedReasoning(text);
    item.status = status;
    const where = { item_id: item.id, output_index: index, content_index: 0 };
    return [
      { type: 'response.reasoning_text.done', ...where, text },
      { type: 'response.content_part.done', ...where, part: reasoningPart(text) },
      { type: 'response.output_item.done', output_index: index, item: snapshot(item) },
    ];
  }

  private openMessage(): ItemEvent[] {
    const item: MessageItem = { type: 'message', id: newId('msg'), status: 'in_progress', role: 'assistant', content: [] };
    const index = this.items.push(item) - 1;
    this.open = { index, item, text: '' };
    const added = { type: 'response.output_item.added', output_index: index, item: snapshot(item) };
    item.content.push(textPart(''));
    return [added, { type: 'response.content_part.added', item_id: item.id, output_index: index, content_index: 0, part: textPart('') }];
  }

  private appendText(delta: string): ItemEvent[] {
    const events = this.open === undefined ? this.openMessage() : [];
    const open = this.open as Open<MessageItem>;
    open.text += delta;
    events.push({ type: 'response.output_text.delta', item_id: open.item.id, output_index: open.index, content_index: 0, delta, logprobs: [] });
    return events;
  }

  private closeMessage(status: Exclude<ItemStatus, 'in_progress'>): ItemEvent[] {
    const open = this.open;
    if (open === undefined) return [];
    this.open = undefined;
    const { item, index, text } = open;
    item.content = [textPart(text)];
    item.status = status;
    const where = { item_id: item.id, output_index: index, content_index: 0 };
    return [
      { type: 'response.output_text.done', ...where, text, logprobs: [] },
      { type: 'response.content_part.done', ...where, part: textPart(text) },
      { type: 'response.output_item.done', output_index: index, item: snapshot(item) },
    ];
  }

  private addCall(name: string, args: string): ItemEvent[] {
    const item: FunctionCallItem = { type: 'function_call', id: newId('fc'), call_id: newId('call'), name, arguments: '', status: 'in_progress' };
    const index = this.items.push(item) - 1;
    const added = { type: 'response.output_item.added', output_index: index, item: snapshot(item) };
    item.arguments = args;
    item.status = 'completed';
    return [
      added,
      { type: 'response.function_call_arguments.delta', item_id: item.id, output_index: index, delta: args },
      { type: 'response.function_call_arguments.done', item_id: item.id, output_index: index, name, arguments: args },
      { type: 'response.output_item.done', output_index: index, item: snapshot(item) },
    ];
  }
}
