/**
 * Extended thinking on a reasoning model (one whose template writes `<think>…</think>`,
 * worker/tools/reasoning.ts): the request's `thinking` as the generate message's reasoning, the think
 * block as the message's first content block (`thinking`, with `thinking_delta` and `signature_delta`
 * in streams), and thinking blocks a client sends back read as the assistant turn's reasoning.
 *
 * The signature. The real API's is an opaque token that lets it verify a thinking block came back
 * unmodified. Ours is `semantic.v1.` and the base64url SHA-256 of the thinking text: a plain hash, not
 * a keyed one, so it verifies across restarts and servers (a key per process would make every Claude
 * Code session that outlives a restart a 400), and it catches a block changed on the way back, which
 * is what a client can get wrong; it proves nothing about who wrote it, which a local server, whose
 * clients may write any prompt they like anyway, has no use for. A block whose signature is ours and
 * does not match its text is the real API's 400, in its words; one with a signature of another form
 * (the real API's, after a client switched servers) or none is taken as it is, where the real API would
 * refuse it: we cannot tell it was modified, and refusing would end the client's conversation.
 */
import { createHash } from 'node:crypto';
import { BadRequestError } from '../../../shared/errors.js';
import type { ReasoningRequest } from '../../../shared/protocol/messages.js';
import { ReasoningStream, type ReasoningStart } from '../../tools/reasoning.js';
import type { ThinkingConfig } from './request-fields.js';

/**
 * The generate message's reasoning for a request's `thinking`: `enabled` bounds the think block by
 * `budget_tokens`; `adaptive` and `between_tools` leave it to the model, within max_tokens.
 *
 * No `thinking` is thinking off: the real API answers such a request without thinking, so clients
 * that do not ask (Claude Code's background requests) get the plain answer they expect. The OpenAI
 * routes differ on purpose: without `reasoning_effort` the template's default (thinking on) stands,
 * as on llama-server, vLLM and OpenAI's own reasoning models. Off is the template's `enable_thinking`
 * false; a template without that switch opens the block anyway and the engine closes it at once.
 *
 * A grammar (a forced tool call, `output_config.format`) shapes the whole output, so it is written
 * with thinking off, as on the OpenAI routes.
 */
export function reasoningOf(config: ThinkingConfig | null | undefined, grammar: boolean): ReasoningRequest {
  if (grammar || config === null || config === undefined || config.type === 'disabled') return { enabled: false };
  return config.type === 'enabled' ? { enabled: true, budgetTokens: config.budget_tokens } : { enabled: true };
}

const signaturePrefix = 'semantic.v1.';

/** The signature of a thinking block with this text (see the module comment). */
export function thinkingSignature(thinking: string): string {
  return signaturePrefix + createHash('sha256').update(thinking, 'utf8').digest('base64url');
}

/** A thinking block sent back: 400 if its signature is ours and was not made for its text. */
export function checkThinkingBlock(block: { thinking: string; signature?: string | undefined }, path: string): void {
  const { signature } = block;
  if (signature === undefined || !signature.startsWith(signaturePrefix) || signature === thinkingSignature(block.thinking)) return;
  const param = `${path}.signature`;
  throw new BadRequestError(`${path}: Invalid \`signature\` in \`thinking\` block`, param);
}

/** One event of a message stream (blocks.ts). */
type Send = (event: { readonly type: string; readonly [field: string]: unknown }) => void;

/**
 * The thinking block of a message stream, in the real API's events: `content_block_start` with
 * `{type: "thinking", thinking: "", signature: ""}`, the reasoning as `thinking_delta`s, and the
 * signature as one `signature_delta` just before `content_block_stop`. It opens as soon as the output
 * is known to be inside the think block (at once where the prompt opened it) and closes when the
 * answer starts or the output ends; it is the message's first block. Its `push` hands back the answer
 * part of the text for the other blocks.
 */
export class ThinkingEvents {
  private readonly stream: ReasoningStream;
  private state: 'before' | 'open' | 'closed' = 'before';
  private index = -1;
  private thinking = '';

  constructor(
    start: ReasoningStart,
    private readonly send: Send,
    /** Opens a block with this content: its index. */
    private readonly openBlock: (contentBlock: Record<string, unknown>) => number,
  ) {
    this.stream = new ReasoningStream(start);
  }

  /** Right after `message_start`. */
  start(): void {
    if (this.stream.inReasoning) this.open();
  }

  /** The answer's part of `delta`, after the thinking block's events for its reasoning. */
  push(delta: string): string {
    const part = this.stream.push(delta);
    this.think(part.reasoning);
    if (this.stream.answering) this.close();
    return part.answer;
  }

  /** At the end of generation: the block closes; what was withheld is handed back if it is answer. */
  finish(): string {
    const part = this.stream.finish();
    this.think(part.reasoning);
    this.close();
    return part.answer;
  }

  private think(text: string): void {
    if (this.state === 'before' && (text !== '' || this.stream.inReasoning)) this.open();
    if (text === '' || this.state !== 'open') return;
    this.thinking += text;
    this.send({ type: 'content_block_delta', index: this.index, delta: { type: 'thinking_delta', thinking: text } });
  }

  private open(): void {
    this.state = 'open';
    this.index = this.openBlock({ type: 'thinking', thinking: '', signature: '' });
  }

  private close(): void {
    if (this.state !== 'open') return;
    this.state = 'closed';
    this.send({ type: 'content_block_delta', index: this.index, delta: { type: 'signature_delta', signature: thinkingSignature(this.thinking) } });
    this.send({ type: 'content_block_stop', index: this.index });
  }
}
