/**
 * max_tokens held to what the context can still hold, for the Anthropic family. Claude Code asks for
 * `max_tokens: 32000` on every request, whatever the model: against a local server with a smaller
 * context every request would be a 400 (prompt + max_tokens over the context) before its first turn.
 * llama-server caps generation at what is left of the slot's context and ends the answer there; a
 * user of a local server expects the same, so here max_tokens is a cap, not a reservation: the answer
 * ends with `stop_reason: "max_tokens"` where the context is full. A prompt that alone fills the
 * context is still the engine's 400. The OpenAI family keeps its 400: its clients name max_tokens
 * themselves, and its 400 tells them the room left.
 */
import type { GenerateInput, ModelSummary, ReasoningRequest } from '../../../shared/protocol/messages.js';
import type { GenerationEngine } from '../../generation.js';

/** The engine's KV block: a sequence holds a whole number of them (worker/inference/runtime.ts). */
const blockTokens = 16;

/**
 * Tokens one sequence holds, as the engine computes it (engine.ts: llama.cpp's per-sequence context,
 * the whole context when unified, else its share, rounded down to whole blocks).
 */
export function sequenceCapacity(model: Pick<ModelSummary, 'engineContext' | 'maxSequences'>, kvUnified: boolean): number {
  const perSequence = kvUnified ? model.engineContext : Math.floor(model.engineContext / model.maxSequences);
  return Math.floor(perSequence / blockTokens) * blockTokens;
}

/**
 * More tokens than the prompt can have: every token stands for at least one byte of the rendered text,
 * which is the request's text with the template's markup around it (tool schemas may be indented).
 */
function promptTokensAtMost(input: GenerateInput): number {
  return 2 * Buffer.byteLength(JSON.stringify(input)) + 1024;
}

/**
 * `maxTokens`, or the room the prompt leaves in one sequence where that is less. The prompt is counted
 * (rendered and tokenized as generation does) only when the request could overflow.
 */
export async function fittedMaxTokens(
  engine: Pick<GenerationEngine, 'countTokens'>,
  input: GenerateInput,
  maxTokens: number,
  capacity: number,
  reasoning?: ReasoningRequest,
): Promise<number> {
  if (maxTokens + promptTokensAtMost(input) <= capacity) return maxTokens;
  const room = capacity - (await engine.countTokens(input, reasoning));
  return room >= 1 ? Math.min(maxTokens, room) : maxTokens;
}
