// The addon's cached tokenizer (addon/fragment-tokenizer.cc) against llama_tokenize itself: for four
// of llama.cpp's own vocabularies (BPE: Qwen2, Llama 3; SPM: Llama 2, and Phi-3, whose special
// tokens strip the whitespace after them), every text gives exactly the tokens llama_tokenize gives,
// on first sight (pieces cached) and again (pieces read from the cache), in any combination.
import t, { type Test } from 'tap';
import { join } from 'node:path';
import { loadAddon, type Model } from '../../worker/engine/addon.js';
import { projectRoot } from '../../shared/paths.js';
import { tinyModelPath } from '../helpers/model.js';

const addon = loadAddon();
const vocabPath = (name: string): string => join(projectRoot(), 'deps', 'llama.cpp', 'models', `ggml-vocab-${name}.gguf`);

/** Special-token texts of the four vocabularies, mixed into every vocabulary's texts. */
const specials = [
  '<|im_start|>',
  '<|im_end|>',
  '<|endoftext|>',
  '<|begin_of_text|>',
  '<|eot_id|>',
  '<|start_header_id|>',
  '<|end_header_id|>',
  '<s>',
  '</s>',
  '<unk>',
  '<|user|>',
  '<|assistant|>',
  '<|system|>',
  '<|end|>',
];
const words = ['hello', ' world', 'héllo', ' 日本語', '🦙', '\n', '\n\n', '  ', '\t', ' ', 'x', '123', "'s", '<|', '|>', '<', 'im_end'];
const fixed = [
  '',
  ' ',
  '<|im_start|>',
  '<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n',
  '<|user|>\nhello<|end|>\n<|assistant|>',
  '<|user|>  \n\t hello  <|end|>   <|assistant|>  ',
  ' <s> hi </s>  x</s></s>',
  '<|im_<|im_end|>start|>',
  '<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are terse.<|eot_id|>',
];

/** Deterministic texts: special tokens, whitespace runs and multi-byte characters in every order. */
function generated(count: number, seed: number): string[] {
  let state = seed;
  const next = (n: number): number => {
    state = (state * 1103515245 + 12345) % 2 ** 31;
    return state % n;
  };
  return Array.from({ length: count }, () => {
    const parts = Array.from({ length: 1 + next(12) }, () => (next(3) === 0 ? specials[next(specials.length)] : words[next(words.length)]));
    return parts.join('');
  });
}

function check(t: Test, model: Model, texts: string[], addSpecial: boolean): void {
  let mismatches = 0;
  for (const text of texts) {
    const expected = [...model.tokenize(text, { addSpecial, parseSpecial: true, cache: false })];
    for (const pass of ['first', 'second (cached now)', 'cached']) {
      const actual = [...model.tokenize(text, { addSpecial, parseSpecial: true })];
      if (actual.join() !== expected.join()) {
        mismatches++;
        t.same(actual, expected, `${pass} tokenization of ${JSON.stringify(text)}`);
      }
    }
  }
  t.equal(mismatches, 0, `${texts.length} texts tokenize as llama_tokenize does (addSpecial ${addSpecial})`);
}

for (const name of ['qwen2', 'llama-bpe', 'llama-spm', 'phi-3']) {
  t.test(`${name}: cached pieces give llama_tokenize's tokens`, async (t) => {
    const model = await addon.loadModel(vocabPath(name), { vocabOnly: true });
    t.teardown(() => model.dispose());
    check(t, model, [...fixed, ...generated(400, name.length)], true);
    check(t, model, generated(200, 7 * name.length), false);
  });
}

t.test('a piece is cached from its second sight, and the cache counts what it holds', async (t) => {
  const model = await addon.loadModel(vocabPath('qwen2'), { vocabOnly: true });
  t.teardown(() => model.dispose());
  const text = '<|im_start|>user\nA question asked once, by a one-shot request.<|im_end|>\n';
  model.tokenize(text, { parseSpecial: true });
  t.same(model.tokenizerCache(), { entries: 0, bytes: 0 }, 'seen once: not cached');
  const tokens = model.tokenize(text, { parseSpecial: true }).length;
  const cached = model.tokenizerCache();
  t.equal(cached.entries, 2, 'seen twice: both pieces cached (the text after each special token)');
  const raw = text.length - '<|im_start|><|im_end|>'.length + 4 * (tokens - 2);
  t.ok(cached.bytes > raw, `counted bytes (${cached.bytes}) include the nodes, beyond text and tokens (${raw})`);
  model.tokenize(text, { parseSpecial: true });
  t.same(model.tokenizerCache(), cached, 'a third sight reads the cache');
});

t.test("phi-3's special tokens strip the whitespace after them, cached or not", async (t) => {
  const model = await addon.loadModel(vocabPath('phi-3'), { vocabOnly: true });
  t.teardown(() => model.dispose());
  const tight = [...model.tokenize('<|user|>hello<|end|>', { parseSpecial: true })];
  t.same([...model.tokenize('<|user|>\n  hello<|end|>\n', { parseSpecial: true })], tight);
  t.same([...model.tokenize('<|user|>\n  hello<|end|>\n', { parseSpecial: true, cache: false })], tight);
});

t.test('a growing conversation: each turn tokenizes as a whole', async (t) => {
  const model = await addon.loadModel(await tinyModelPath());
  t.teardown(() => model.dispose());
  const turns = ['<|im_start|>system\nYou are a careful assistant.<|im_end|>\n'];
  for (let turn = 0; turn < 6; turn++) {
    turns.push(`<|im_start|>user\nQuestion ${turn}: what is ${turn} + ${turn}?<|im_end|>\n`);
    const text = `${turns.join('')}<|im_start|>assistant\n`;
    t.same([...model.tokenize(text, { addSpecial: true, parseSpecial: true })], [...model.tokenize(text, { addSpecial: true, parseSpecial: true, cache: false })], `turn ${turn}`);
    turns.push(`<|im_start|>assistant\n${turn * 2}.<|im_end|>\n`);
  }
});
