/**
 * A request's reasoning budget (Anthropic `budget_tokens`, OpenAI `reasoning_effort`): once that many
 * tokens were generated inside the think block, the engine ends the block itself. It feeds the tokens
 * of `\n</think>\n\n` in place of the next sampled ones, one per step as sampled tokens are fed, so
 * the KV cache, the output and the agent's cached turn hold exactly what a model that closed the
 * block would have written; the answer follows from the model's next sample.
 *
 * The block is followed on the text the sequence emits (worker/tools/reasoning.ts), which also counts
 * the usage's reasoning tokens. Text withheld while a stop string may start is seen a little later, so
 * in that case the close comes a token or two late. A request with a grammar is never steered: its
 * sampler has accepted the token sampled, and a forced one would leave the grammar's state behind.
 *
 *   sampled:  t1 t2 … tB  x   x   x   x   a1 a2 …      (x: samples replaced)
 *   fed:      t1 t2 … tB  \n </think> \n\n a1 a2 …     (B = the budget)
 */
import { ReasoningStream, type ReasoningStart } from '../tools/reasoning.js';
import type { GenerateMessage } from '../../shared/protocol/messages.js';

export class ReasoningBudget {
  private readonly stream: ReasoningStream;
  /** Tokens generated inside the block so far, its closing tag included (usage's reasoning tokens). */
  tokens = 0;
  /** The close's tokens still to feed, once the budget is spent; empty once fed. */
  private forcing: number[] | undefined;

  constructor(
    start: ReasoningStart,
    /** Tokens the block may take before it is closed; Infinity: unbounded. */
    private readonly limit: number,
    private readonly closeTokens: () => Int32Array,
  ) {
    this.stream = new ReasoningStream(start);
  }

  /** The token to feed next: the one sampled, or the next token of the close while the budget is spent. */
  steer(sampled: number): number {
    if (this.forcing === undefined && this.stream.inReasoning && this.tokens >= this.limit) this.forcing = [...this.closeTokens()];
    return this.forcing?.shift() ?? sampled;
  }

  /** The text the last token fed completed (possibly empty while withheld); the token counts if it was or ended up inside the block. */
  observe(text: string): void {
    const inside = this.stream.inReasoning;
    this.stream.push(text);
    if (inside || this.stream.inReasoning) this.tokens++;
  }
}

/**
 * The budget a request runs under, or none when its output starts at the answer. Thinking off on a
 * template that opens the block anyway is a budget of 0: the block is closed at once.
 */
export function reasoningBudgetFor(request: GenerateMessage, start: ReasoningStart, closeTokens: () => Int32Array): ReasoningBudget | undefined {
  if (start === 'answer') return undefined;
  const { reasoning } = request;
  const limit = request.sampling.grammar !== undefined ? Infinity : reasoning?.enabled === false ? 0 : (reasoning?.budgetTokens ?? Infinity);
  return new ReasoningBudget(start, limit, closeTokens);
}
