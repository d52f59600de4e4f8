/**
 * OpenAI's `reasoning_effort` (chat completions) and `reasoning.effort` (Responses API) as a reasoning
 * request (shared/protocol/messages.ts): `none` turns thinking off (the template's `enable_thinking`),
 * the others bound the tokens of the think block. OpenAI publishes no numbers; these follow the
 * common budgets of open reasoning models (Anthropic's minimum budget is 1024, Qwen3's guidance for
 * hard problems is tens of thousands of tokens). No effort: thinking on, bounded by max tokens only.
 * A model that does not reason ignores all of it.
 */
import type { ReasoningRequest } from '../../shared/protocol/messages.js';

export const reasoningEfforts = ['none', 'minimal', 'low', 'medium', 'high', 'xhigh'] as const;
export type ReasoningEffort = (typeof reasoningEfforts)[number];

/** Think-block tokens per effort (docs/api.md lists them too). */
export const effortBudgets: Record<Exclude<ReasoningEffort, 'none'>, number> = { minimal: 256, low: 1024, medium: 4096, high: 16384, xhigh: 32768 };

export function reasoningForEffort(effort: ReasoningEffort | null | undefined): ReasoningRequest | undefined {
  if (effort === null || effort === undefined) return undefined;
  if (effort === 'none') return { enabled: false };
  return { enabled: true, budgetTokens: effortBudgets[effort] };
}
