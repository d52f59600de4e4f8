/**
 * Reasoning in a model's output: the `<think>…</think>` block Qwen3, QwQ and DeepSeek-R1 write before
 * their answer. Whether a model reasons is read from its chat template, as tool-call formats are
 * (format.ts): a template that knows `</think>` taught its model to write one. Where its output starts
 * is read from the rendered prompt: a prompt that opened `<think>` (DeepSeek-R1, QwQ, Qwen3 2507
 * Thinking, our test model) starts the output inside the block; Qwen3's own lets the model open it;
 * one that closed an empty block (`enable_thinking` false) starts at the answer.
 *
 * `ReasoningStream` splits generated text into reasoning and answer, streamed or whole (the whole
 * output is one delta through the same state machine, so both agree by construction). Every API family
 * uses it: OpenAI's `reasoning_content`, Anthropic's `thinking` blocks, the Responses API's `reasoning`
 * items; tool calls are parsed from the answer only (feed `answer` to a ToolCallStream). The engine
 * uses it too, to know when a reasoning budget is spent (worker/engine/reasoning-budget.ts).
 *
 * As Qwen3's template reads reasoning back, whitespace around it is not part of it: newlines after
 * `<think>` and before `</think>` are dropped, and so are those between `</think>` and the answer. One
 * block only, at the start: a `<think>` later in the answer is answer text.
 */
import type { ReasoningRequest } from '../../shared/protocol/messages.js';

export const thinkOpen = '<think>';
export const thinkClose = '</think>';

/**
 * Where generated text starts: inside the think block (`reasoning`), where the model may open one
 * (`may-open`: only a leading `<think>` does), or at the answer (the model does not reason, or the
 * prompt closed the block).
 */
export type ReasoningStart = 'reasoning' | 'may-open' | 'answer';

/** A reasoning model's starts with thinking on and off (`enable_thinking`); off equals on where the template ignores the switch. */
export interface ReasoningStarts {
  thinkingOn: ReasoningStart;
  thinkingOff: ReasoningStart;
}

/**
 * Where a request's output starts, from the model summary's starts (null: the model does not reason)
 * and the request's reasoning (absent: the template's default, thinking on): how an API family builds
 * its ReasoningStream for a generation.
 */
export function reasoningStartFor(starts: ReasoningStarts | null, request: ReasoningRequest | undefined): ReasoningStart {
  if (starts === null) return 'answer';
  return request?.enabled === false ? starts.thinkingOff : starts.thinkingOn;
}

/** Whether a chat template teaches its model to reason in `<think>` blocks. */
export function templateReasons(chatTemplate: string | null): boolean {
  return chatTemplate !== null && chatTemplate.includes(thinkClose);
}

const opensThinking = /<think>\s*$/;

/**
 * Where output starts after this rendered prompt: inside the block if the prompt ends by opening one
 * (only its end counts: a message may quote `<think>`); else where the model may open one, if it
 * reasons with thinking on.
 */
export function reasoningStartOf(promptText: string, mayOpen: boolean): ReasoningStart {
  if (opensThinking.test(promptText)) return 'reasoning';
  return mayOpen ? 'may-open' : 'answer';
}

/** What one delta of output adds: reasoning first, then answer (the block comes before the answer). */
export interface ReasoningDelta {
  reasoning: string;
  answer: string;
}

type State = ReasoningStart | 'after-close';

/** The length of the longest suffix of `text` that is a proper prefix of `tag`: text that may become the tag. */
function partialTagAt(text: string, tag: string): number {
  for (let length = Math.min(tag.length - 1, text.length); length > 0; length--) {
    if (tag.startsWith(text.slice(text.length - length))) return length;
  }
  return 0;
}

export class ReasoningStream {
  private state: State;
  /** Text read but not yet shown: a possible tag, or whitespace whose place is not known yet. */
  private held = '';
  /** Reasoning shown so far (leading whitespace is dropped until it is not empty). */
  private reasoned = false;

  constructor(start: ReasoningStart) {
    this.state = start;
  }

  /** Whether the output is inside the think block now (the engine counts its tokens against a budget). */
  get inReasoning(): boolean {
    return this.state === 'reasoning';
  }

  /** Whether the output has left the think block (or never had one): the answer is being written. */
  get answering(): boolean {
    return this.state === 'answer' || this.state === 'after-close';
  }

  push(delta: string): ReasoningDelta {
    const out: ReasoningDelta = { reasoning: '', answer: '' };
    this.held += delta;
    this.settle(out, false);
    return out;
  }

  /** The output ended: what was held back is shown as what it is. */
  finish(): ReasoningDelta {
    const out: ReasoningDelta = { reasoning: '', answer: '' };
    this.settle(out, true);
    return out;
  }

  private settle(out: ReasoningDelta, final: boolean): void {
    for (;;) {
      const before = this.state;
      if (this.state === 'may-open') this.settleOpening(final);
      else if (this.state === 'reasoning') this.settleReasoning(out, final);
      else if (this.state === 'after-close') this.settleAfterClose(final);
      else {
        out.answer += this.held;
        this.held = '';
      }
      if (this.state === before) return;
    }
  }

  /** Only whitespace came yet: a `<think>` opens the block, anything else is the answer. */
  private settleOpening(final: boolean): void {
    const trimmed = this.held.trimStart();
    if (trimmed.startsWith(thinkOpen)) {
      this.held = trimmed.slice(thinkOpen.length);
      this.state = 'reasoning';
    } else if (final || (trimmed !== '' && !thinkOpen.startsWith(trimmed))) {
      this.state = 'answer';
    }
  }

  private settleReasoning(out: ReasoningDelta, final: boolean): void {
    const close = this.held.indexOf(thinkClose);
    if (close >= 0) {
      this.showReasoning(out, this.held.slice(0, close).trimEnd());
      this.held = this.held.slice(close + thinkClose.length);
      this.state = 'after-close';
      return;
    }
    if (final) {
      this.showReasoning(out, this.held);
      this.held = '';
      return;
    }
    // Held: a suffix that may become `</think>`, and whitespace that would go if it did.
    const partial = partialTagAt(this.held, thinkClose);
    const shown = this.held.slice(0, this.held.length - partial).trimEnd();
    this.showReasoning(out, shown);
    this.held = this.held.slice(shown.length);
  }

  /** Whitespace between `</think>` and the answer is dropped. */
  private settleAfterClose(final: boolean): void {
    this.held = this.held.trimStart();
    if (this.held !== '' || final) this.state = 'answer';
  }

  private showReasoning(out: ReasoningDelta, text: string): void {
    const shown = this.reasoned ? text : text.trimStart();
    if (shown === '') return;
    out.reasoning += shown;
    this.reasoned = true;
  }
}

/** The whole output split at once. */
export function splitReasoning(start: ReasoningStart, output: string): ReasoningDelta {
  const stream = new ReasoningStream(start);
  const first = stream.push(output);
  const rest = stream.finish();
  return { reasoning: first.reasoning + rest.reasoning, answer: first.answer + rest.answer };
}
