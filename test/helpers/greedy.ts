/**
 * What a cold, single-sequence greedy run of the tiny model produces for a chat (or a raw text prompt,
 * as legacy completions send), computed in the test
 * process with the addon directly: the reference the server's output must equal token for token.
 */
import { loadAddon, type Model } from '../../worker/engine/addon.js';
import { ChatTemplate } from '../../worker/engine/chat-template.js';
import type { ChatMessage } from '../../shared/protocol/messages.js';

export interface GreedyReference {
  promptTokens: number;
  /** The templated prompt's tokens, as the engine tokenizes them. */
  prompt: number[];
  tokens: number[];
  text: string;
}

/**
 * `input`: chat messages, rendered with the model's template, or a raw prompt string, tokenized as is.
 * `thinking`: the template's `enable_thinking` (undefined: its default).
 */
export async function greedyReference(modelPath: string, input: ChatMessage[] | string, count: number, thinking?: boolean): Promise<GreedyReference> {
  const addon = loadAddon();
  const model: Model = await addon.loadModel(modelPath);
  const info = model.info();
  const piece = (token: number): string => model.detokenize(Int32Array.of(token), { special: true });
  const text = typeof input === 'string' ? input : new ChatTemplate(info.chatTemplate, { bos: piece(info.bos), eos: piece(info.eos) }).render(input, undefined, thinking);
  const prompt = model.tokenize(text, {
    addSpecial: true,
    parseSpecial: true,
  });
  const context = await addon.createContext(model, { nCtx: prompt.length + count + 16, nSeqMax: 1, nBatch: Math.max(512, prompt.length), threads: 1 });
  const sampler = new addon.Sampler(model, { temperature: 0 });
  const logits = new Uint8Array(prompt.length);
  logits[prompt.length - 1] = 1;
  const positions = Int32Array.from(prompt, (_, i) => i);
  let [next] = await context.decode({ tokens: prompt, positions, seqIds: new Int32Array(prompt.length), logits }, [{ index: prompt.length - 1, sampler }]);
  const tokens: number[] = [];
  while (tokens.length < count && !model.isEog(next as number)) {
    tokens.push(next as number);
    const batch = { tokens: Int32Array.of(next as number), positions: Int32Array.of(prompt.length + tokens.length - 1), seqIds: Int32Array.of(0), logits: Uint8Array.of(1) };
    [next] = await context.decode(batch, [{ index: 0, sampler }]);
  }
  const output = Buffer.concat(tokens.map((t) => model.tokenToPiece(t))).toString('utf8');
  sampler.dispose();
  context.dispose();
  model.dispose();
  return { promptTokens: prompt.length, prompt: [...prompt], tokens, text: output };
}

/** What the engine keeps after a turn: the prompt and every generated token but the last (never decoded). */
export function cachedAfter(reference: GreedyReference): number[] {
  return [...reference.prompt, ...reference.tokens.slice(0, -1)];
}

export function expectedReuse(cached: number[], next: GreedyReference): number {
  let k = 0;
  while (k < cached.length && k < next.prompt.length && cached[k] === next.prompt[k]) k++;
  return Math.min(k, next.prompt.length - 1);
}
