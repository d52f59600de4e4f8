/**
 * Sampling limits and defaults every API family starts from, so that one family's schema never imports
 * another's.
 */
import type { SamplingParams } from '../../shared/protocol/messages.js';

/** The protocol (and llama.cpp's sampler) accepts this many stop strings; OpenAI's own limit is 4. */
export const maxStopStrings = 16;

/** OpenAI's defaults (Anthropic's are the same), plus llama.cpp's neutral values for the extensions. */
export const defaultSampling: SamplingParams = {
  temperature: 1,
  topP: 1,
  topK: 0,
  minP: 0,
  repeatPenalty: 1,
  frequencyPenalty: 0,
  presencePenalty: 0,
};
