/** The tiny generated model every model-dependent test shares (generated once, cached outside the repo). */
import { ensureModel } from '../../shared/gguf/make-model.js';

export function tinyModelPath(): Promise<string> {
  return ensureModel('tiny');
}

/** The tiny model with a chat template that reasons as Qwen3 does (shared/gguf/reasoning-template.ts): its prompt opens `<think>`. */
export function tinyReasoningModelPath(): Promise<string> {
  return ensureModel('tiny', 0, { reasoning: true });
}

/** The tiny model whose sampled answers end by themselves (make-model --ends-turns): end-of-turn is likely at every step. */
export function tinyEndsTurnsModelPath(): Promise<string> {
  return ensureModel('tiny', 0, { endsTurns: true });
}
