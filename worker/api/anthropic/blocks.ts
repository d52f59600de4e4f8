/**
 * The model's text as an Anthropic message's content blocks: a reasoning model's `thinking` block
 * first (thinking.ts), then text, and a `tool_use` block per call the model wrote in its own syntax
 * (worker/tools/tool-calls.ts), read from the answer only. The JSON body is built by replaying
 * the stream's events, so a streamed message accumulates to the non-streamed one block for block, in
 * the model's order (text written after a call is its own block after the call, in both).
 */
import { randomBytes } from 'node:crypto';
import type { ToolFormat } from '../../tools/format.js';
import { ToolCallStream, type ParsedToolCall, type ToolCallPart } from '../../tools/tool-calls.js';
import type { ReasoningStart } from '../../tools/reasoning.js';
import { ThinkingEvents } from './thinking.js';

/** How calls are read from this request's output; absent when the model was told of no tools. */
export interface CallParsing {
  format: ToolFormat;
  /** 1 with `disable_parallel_tool_use`: later calls are dropped. */
  maxCalls: number;
}

export type TextBlock = { type: 'text'; text: string };
export type ToolUseBlock = { type: 'tool_use'; id: string; name: string; input: Record<string, unknown> };
export type ThinkingBlock = { type: 'thinking'; thinking: string; signature: string };
export type OutputBlock = ThinkingBlock | TextBlock | ToolUseBlock;

/** One event of a message stream: its `type` is also the SSE event name. */
export interface StreamEvent {
  readonly type: string;
  readonly [field: string]: unknown;
}

/** Ids in the real API's shape; the client sends them back in its tool_result blocks. */
export function newToolUseId(): string {
  return `toolu_${randomBytes(12).toString('hex')}`;
}

/** The parser hands over arguments as compact JSON text of an object; the API carries the object. */
function toolUseBlock(call: ParsedToolCall): ToolUseBlock {
  return { type: 'tool_use', id: newToolUseId(), name: call.name, input: JSON.parse(call.arguments) as Record<string, unknown> };
}

/**
 * The JSON body's content: the blocks the stream would send for this output. Without calls the answer
 * is one text block, empty or not, as before tools existed (after the thinking block, if any); with
 * calls a text block is there only where the model wrote text beside them. `reasoning`: where the
 * output starts (`answer`: no thinking block).
 */
export function outputBlocks(output: string, parsing: CallParsing | undefined, reasoning: ReasoningStart = 'answer'): OutputBlock[] {
  const blocks: OutputBlock[] = [];
  const stream = new BlockStream((event) => collectBlock(blocks, event), parsing, reasoning);
  stream.start();
  stream.push(output);
  stream.finish();
  return blocks;
}

/** Applies one stream event to the content it describes (a call's input arrives as one JSON delta). */
function collectBlock(blocks: OutputBlock[], event: StreamEvent): void {
  const index = event.index as number;
  if (event.type === 'content_block_start') blocks[index] = { ...(event.content_block as OutputBlock) };
  if (event.type !== 'content_block_delta') return;
  const block = blocks[index]!;
  const delta = event.delta as { type: string; text?: string; partial_json?: string; thinking?: string; signature?: string };
  if (block.type === 'thinking') {
    block.thinking += delta.thinking ?? '';
    block.signature = delta.signature ?? block.signature;
  } else if (block.type === 'text') block.text += delta.text ?? '';
  else block.input = JSON.parse(delta.partial_json ?? '{}') as Record<string, unknown>;
}

/**
 * The stream's content events. A reasoning model's thinking block comes first (thinking.ts). Without
 * tools or thinking the text block opens at once; else a block opens only when its first text or call
 * is known, since the output may begin with a call or the answer may not have started. Either way
 * `ping` follows the first `content_block_start`, where the real API sends it. A call is one `tool_use`
 * block: start with an empty input, its arguments as one `input_json_delta`, stop.
 */
export class BlockStream {
  private readonly parser: ToolCallStream | undefined;
  private readonly thinking: ThinkingEvents | undefined;
  private index = -1;
  /** Whether a text or tool_use block was opened: without one, finish opens an empty text block. */
  private answered = false;
  private textOpen = false;
  private calls = 0;
  private pinged = false;

  constructor(
    private readonly send: (event: StreamEvent) => void,
    private readonly parsing: CallParsing | undefined,
    reasoning: ReasoningStart = 'answer',
  ) {
    this.parser = parsing === undefined ? undefined : new ToolCallStream(parsing.format);
    this.thinking = reasoning === 'answer' ? undefined : new ThinkingEvents(reasoning, send, (block) => this.openBlock(block));
  }

  /** Right after `message_start`. */
  start(): void {
    if (this.thinking !== undefined) this.thinking.start();
    else if (this.parser === undefined) this.openText();
  }

  push(delta: string): void {
    this.answer(this.thinking === undefined ? delta : this.thinking.push(delta));
  }

  private answer(delta: string): void {
    if (this.parser === undefined) return this.text(delta);
    this.emit(this.parser.pushParts(delta));
  }

  /** Text and calls in the model's order: a delta that ends a call and begins the text after it keeps that order. */
  private emit(parts: readonly ToolCallPart[]): void {
    for (const part of parts) {
      if ('call' in part) this.call(part.call);
      else this.text(part.text);
    }
  }

  /** At the end of generation: flushes withheld text, closes the last block. Returns how many calls were made. */
  finish(): number {
    if (this.thinking !== undefined) this.answer(this.thinking.finish());
    if (this.parser !== undefined) this.emit(this.parser.finishParts());
    if (!this.answered) this.openText();
    this.closeText();
    return this.calls;
  }

  private text(text: string): void {
    if (text === '') return;
    if (!this.textOpen) this.openText();
    this.send({ type: 'content_block_delta', index: this.index, delta: { type: 'text_delta', text } });
  }

  private openText(): void {
    this.textOpen = true;
    this.answered = true;
    this.openBlock({ type: 'text', text: '' });
  }

  /** The next block's `content_block_start` (and the stream's one `ping`); its index. */
  private openBlock(contentBlock: Record<string, unknown>): number {
    this.index++;
    this.send({ type: 'content_block_start', index: this.index, content_block: contentBlock });
    this.pingOnce();
    return this.index;
  }

  private pingOnce(): void {
    if (this.pinged) return;
    this.pinged = true;
    this.send({ type: 'ping' });
  }

  private closeText(): void {
    if (!this.textOpen) return;
    this.textOpen = false;
    this.send({ type: 'content_block_stop', index: this.index });
  }

  private call(call: ParsedToolCall): void {
    if (this.calls >= (this.parsing?.maxCalls ?? 0)) return;
    this.calls++;
    this.closeText();
    this.answered = true;
    const { id, name, input } = toolUseBlock(call);
    this.openBlock({ type: 'tool_use', id, name, input: {} });
    this.send({ type: 'content_block_delta', index: this.index, delta: { type: 'input_json_delta', partial_json: JSON.stringify(input) } });
    this.send({ type: 'content_block_stop', index: this.index });
  }
}
