/**
 * The model's text as an Anthropic message's content blocks: text, and a `tool_use` block per call
 * the model wrote in its own syntax (worker/tools/tool-calls.ts). The JSON body and the stream share
 * the one parser state machine, so a streamed message accumulates to the non-streamed one, block for
 * block — with one exception: text the model writes after a call is its own block after the call in
 * the stream (it cannot go back into a closed block), and part of the first text block in JSON.
 */
import { randomBytes } from 'node:crypto';
import type { ToolFormat } from '../tools/format.js';
import { parseToolCalls, ToolCallStream, type ParsedToolCall } from '../tools/tool-calls.js';

/** How calls are read from this request's output; absent when the model was told of no tools. */
export interface CallParsing {
  format: ToolFormat;
  /** 1 with `disable_parallel_tool_use`: later calls are dropped. */
  maxCalls: number;
}

export type TextBlock = { type: 'text'; text: string };
export type ToolUseBlock = { type: 'tool_use'; id: string; name: string; input: Record<string, unknown> };
export type OutputBlock = TextBlock | ToolUseBlock;

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
 * The JSON body's content. Without calls it is one text block, empty or not, as before tools existed;
 * with calls the text block is there only when the model wrote text beside them.
 */
export function outputBlocks(output: string, parsing: CallParsing | undefined): OutputBlock[] {
  if (parsing === undefined) return [{ type: 'text', text: output }];
  const { text, calls } = parseToolCalls(parsing.format, output);
  const kept = calls.slice(0, parsing.maxCalls);
  if (kept.length === 0) return [{ type: 'text', text }];
  return [...(text === '' ? [] : [{ type: 'text' as const, text }]), ...kept.map(toolUseBlock)];
}

/**
 * The stream's content events. Without tools the text block opens at once; with tools a block opens
 * only when its first text or call is known, since the output may begin with a call. Either way `ping`
 * follows the first `content_block_start`, where the real API sends it. A call is one `tool_use`
 * block: start with an empty input, its arguments as one `input_json_delta`, stop.
 */
export class BlockStream {
  private readonly parser: ToolCallStream | undefined;
  private index = -1;
  private textOpen = false;
  private calls = 0;
  private pinged = false;

  constructor(
    private readonly send: (event: StreamEvent) => void,
    private readonly parsing: CallParsing | undefined,
  ) {
    this.parser = parsing === undefined ? undefined : new ToolCallStream(parsing.format);
  }

  /** Right after `message_start`. */
  start(): void {
    if (this.parser === undefined) this.openText();
  }

  push(delta: string): void {
    if (this.parser === undefined) return this.text(delta);
    const { text, calls } = this.parser.push(delta);
    this.text(text);
    for (const call of calls) this.call(call);
  }

  /** At the end of generation: flushes withheld text, closes the last block. Returns how many calls were made. */
  finish(): number {
    if (this.parser !== undefined) {
      const { text, calls } = this.parser.finish();
      this.text(text);
      for (const call of calls) this.call(call);
    }
    if (this.index < 0) this.openText();
    this.closeText();
    return this.calls;
  }

  private text(text: string): void {
    if (text === '') return;
    if (!this.textOpen) this.openText();
    this.send({ type: 'content_block_delta', index: this.index, delta: { type: 'text_delta', text } });
  }

  private openText(): void {
    this.index++;
    this.textOpen = true;
    this.send({ type: 'content_block_start', index: this.index, content_block: { type: 'text', text: '' } });
    this.pingOnce();
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
    this.index++;
    const { id, name, input } = toolUseBlock(call);
    this.send({ type: 'content_block_start', index: this.index, content_block: { type: 'tool_use', id, name, input: {} } });
    this.pingOnce();
    this.send({ type: 'content_block_delta', index: this.index, delta: { type: 'input_json_delta', partial_json: JSON.stringify(input) } });
    this.send({ type: 'content_block_stop', index: this.index });
  }
}
