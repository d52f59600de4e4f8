/**
 * What the engine runs for a request: its prompt tokens (chat messages rendered with the model's own
 * template), its max tokens bounded by what one sequence can hold, and its sampler. Kept apart from
 * the engine so the engine reads as scheduling and caching only.
 */
import type { Addon, Model, Sampler } from './addon.js';
import { ChatTemplate } from './chat-template.js';
import { BadRequestError, ContextExceededError, ErrorCode, SemanticError } from '../../shared/errors.js';
import type { GenerateInput, GenerateMessage, ReasoningRequest } from '../../shared/protocol/messages.js';
import { reasoningStartOf, thinkClose, type ReasoningStart, type ReasoningStarts } from '../tools/reasoning.js';

/** What the engine writes to end a think block whose budget is spent: the block's close as Qwen3's template writes it. */
const forcedClose = `\n${thinkClose}\n\n`;

/** A temperature below this is greedy: dividing logits by it would overflow the sampler's float32. */
export const minSamplingTemperature = 1e-6;
/** Repetition penalties are held to this range, for the same reason (and 1e308 is Infinity as a float32). */
export const repeatPenaltyRange = { min: 1e-6, max: 1e6 } as const;

/**
 * The sampling values llama.cpp's float32 sampler computes with safely. Each API accepts any positive
 * temperature and repeat penalty, but one that rounds to 0 or to Infinity in float32 (temperature
 * 1e-40, repeat_penalty 5e-324) turns logits into Infinity, the softmax into NaN, and the draw into a
 * token the request's grammar refused, which llama.cpp throws on inside the batch: the engine died for
 * every client. At these extremes the result is the same as at the bounds: greedy, or a penalty of
 * one in a million.
 */
export function float32SafeSampling<S extends { temperature: number; repeatPenalty: number }>(sampling: S): S {
  const temperature = sampling.temperature < minSamplingTemperature ? 0 : sampling.temperature;
  const repeatPenalty = Math.min(Math.max(sampling.repeatPenalty, repeatPenaltyRange.min), repeatPenaltyRange.max);
  return { ...sampling, temperature, repeatPenalty };
}

export class RequestInput {
  private readonly template: ChatTemplate;
  /**
   * A prompt text longer than this can never fit in one sequence (capacity × the longest piece any
   * token stands for), so it is refused before it is tokenized: a 4 MB body of text would otherwise
   * cost the tokenizer hundreds of MB, only to be refused after.
   */
  private readonly maxPromptChars: number;

  constructor(
    private readonly addon: Addon,
    private readonly model: Model,
    /** Tokens one sequence can hold: prompt + max tokens beyond it is a 400 with both numbers. */
    private readonly capacity: number,
    /** Generation cap when a request names no max tokens. */
    private readonly defaultMaxTokens: number,
  ) {
    const info = model.info();
    const piece = (token: number): string => (token < 0 ? '' : model.detokenize(Int32Array.of(token), { special: true }));
    this.template = new ChatTemplate(info.chatTemplate, { bos: piece(info.bos), eos: piece(info.eos) });
    this.maxPromptChars = capacity * longestPiece(info.vocabSize, piece);
  }

  /** Null: the model's template does not reason; otherwise where its output starts, thinking on and off. */
  get reasoning(): ReasoningStarts | null {
    return this.template.reasoning;
  }

  /** The tokens of the text that closes a think block (`\n</think>\n\n`), fed in place of sampled ones when a budget is spent. */
  closeTokens(): Int32Array {
    return this.model.tokenize(forcedClose, { addSpecial: false, parseSpecial: true });
  }

  /**
   * The prompt's tokens, the max tokens to generate, and where the output starts (inside a think
   * block the prompt opened, ...); throws a coded 400 error for what cannot run.
   */
  tokens(request: GenerateMessage): { prompt: Int32Array; maxTokens: number; reasoningStart: ReasoningStart } {
    const { tokens: prompt, reasoningStart } = this.promptOf(request.input, request.reasoning, this.maxPromptChars);
    this.checkGrammar(request.sampling.grammar);
    const maxTokens = request.maxTokens ?? Math.min(this.defaultMaxTokens, this.capacity - prompt.length);
    if (maxTokens < 1 || prompt.length + maxTokens > this.capacity) {
      throw new ContextExceededError(prompt.length + Math.max(maxTokens, 1), this.capacity);
    }
    return { prompt, maxTokens, reasoningStart };
  }

  /** The prompt's tokens, as generation counts them. */
  prompt(input: GenerateInput, reasoning?: ReasoningRequest): Int32Array {
    return this.promptOf(input, reasoning).tokens;
  }

  /**
   * The prompt's tokens: the one path both generation and token counting take. A text over `maxChars`
   * is refused untokenized, as more tokens than the context holds. A raw text prompt that opened a
   * think block starts inside it too, whatever the template.
   */
  private promptOf(input: GenerateInput, reasoning: ReasoningRequest | undefined, maxChars = Infinity): { tokens: Int32Array; reasoningStart: ReasoningStart } {
    const thinking = this.template.reasoning === null ? undefined : reasoning?.enabled;
    const text = input.kind === 'chat' ? this.template.render(input.messages, input.tools, thinking) : input.prompt;
    if (text.length > maxChars) {
      const message = `The prompt is ${text.length} characters, more than the ${this.capacity} tokens one sequence holds can encode (${maxChars} characters at most).`;
      throw new SemanticError(ErrorCode.ContextExceeded, message, { param: input.kind === 'chat' ? 'messages' : 'prompt' });
    }
    const prompt = this.model.tokenize(text, { addSpecial: true, parseSpecial: true });
    if (prompt.length === 0) throw new BadRequestError('the prompt is empty', input.kind === 'chat' ? 'messages' : 'prompt');
    const reasoningStart = reasoningStartOf(text, this.template.reasoning !== null && input.kind === 'chat' && thinking !== false);
    return { tokens: prompt, reasoningStart };
  }

  /** A sampler for the request, having seen the prompt (for repetition penalties). */
  sampler(request: GenerateMessage, prompt: Int32Array): Sampler {
    const sampler = this.newSampler(request.sampling);
    sampler.accept(prompt);
    return sampler;
  }

  /**
   * Grammars come from our own JSON Schema converter, so llama.cpp refusing one is our bug or a
   * schema the converter mishandles: a 400 naming no parameter, never a crash.
   */
  private newSampler(requested: GenerateMessage['sampling']): Sampler {
    const sampling = float32SafeSampling(requested);
    return this.withGrammarChecked(
      () =>
        new this.addon.Sampler(this.model, {
          temperature: sampling.temperature,
          topK: sampling.topK,
          topP: sampling.topP,
          minP: sampling.minP,
          repeatPenalty: sampling.repeatPenalty,
          frequencyPenalty: sampling.frequencyPenalty,
          presencePenalty: sampling.presencePenalty,
          ...(sampling.seed === undefined ? {} : { seed: sampling.seed }),
          ...(sampling.grammar === undefined ? {} : { grammar: sampling.grammar }),
        }),
    );
  }

  /**
   * Parses the request's grammar once before admission (from `tokens`), so a bad one is refused
   * like any other bad input, before the request holds a sequence or takes its agent's cache.
   */
  private checkGrammar(grammar: string | undefined): void {
    if (grammar !== undefined) this.withGrammarChecked(() => new this.addon.Sampler(this.model, { temperature: 0, grammar })).dispose();
  }

  private withGrammarChecked(create: () => Sampler): Sampler {
    try {
      return create();
    } catch (error) {
      if ((error as { code?: unknown }).code !== 'ERR_GRAMMAR') throw error;
      throw new BadRequestError('The output grammar derived from this request is invalid; check the JSON schema it came from.');
    }
  }
}

/** The most UTF-16 characters any one token's piece has (special tokens included: prompts parse them). */
function longestPiece(vocabSize: number, piece: (token: number) => string): number {
  let longest = 1;
  for (let token = 0; token < vocabSize; token++) longest = Math.max(longest, piece(token).length);
  return longest;
}
