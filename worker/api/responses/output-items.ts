/**
 * The model's output as Responses API output items, and the stream events that build them, in the
 * order the `openai` SDK's ResponseStream accumulates them: an item is added before its parts, a part
 * before its deltas. Text opens a `message` item (closed when a call follows or generation ends);
 * each parsed call is a whole `function_call` item (added, its arguments as one delta, done). The JSON
 * answer runs the same assembly and keeps only the items, so both answers hold the same output.
 * Reasoning items will come before the message once reasoning models land (issue 15, capability 2).
 */
import type { ModelOutput } from '../openai/output.js';
import { newId, type FunctionCallItem, type ItemStatus, type MessageItem, type OutputItem, type OutputText } from './bodies.js';

/** A stream event without its `sequence_number`, which the sink numbers. */
export type ItemEvent = { type: string } & Record<string, unknown>;

const textPart = (text: string): OutputText => ({ type: 'output_text', text, annotations: [], logprobs: [] });

/** Events carry snapshots: the items change after an event was made. */
const snapshot = <T>(value: T): T => structuredClone(value);

export class OutputAssembler {
  readonly items: OutputItem[] = [];
  /** The message item text goes to, while one is open. */
  private open: { index: number; item: MessageItem; text: string } | undefined;

  /** Events for what the reader made of the latest text. */
  push(part: ModelOutput): ItemEvent[] {
    const events: ItemEvent[] = [];
    if (part.text !== '') events.push(...this.appendText(part.text));
    for (const call of part.calls) {
      events.push(...this.closeMessage('completed'));
      events.push(...this.addCall(call.name, call.arguments));
    }
    return events;
  }

  /** The last events: the open message closes; an output with no item at all gets an empty message. */
  close(status: Exclude<ItemStatus, 'in_progress'>): ItemEvent[] {
    const events = this.items.length === 0 ? this.openMessage() : [];
    return [...events, ...this.closeMessage(status)];
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
    const open = this.open as NonNullable<OutputAssembler['open']>;
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
