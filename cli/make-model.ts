/**
 * `semantic make-model`: the dev tool that writes a random-weight GGUF of a real architecture, for
 * tests, demos and benchmarks (no weights can be downloaded where this runs). Output is gibberish;
 * shapes, costs and code paths are real.
 */
import { mkdir, stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import type { Options } from 'yargs';
import { defaultModelPath, makeModel, modelShapes, type ModelShape } from '../shared/gguf/make-model.js';
import { UsageError } from '../shared/exit.js';

const maxSeed = 2 ** 32 - 1;

export const makeModelFlags: Record<string, Options> = {
  shape: { choices: modelShapes, default: 'tiny', describe: 'Architecture and size: tiny (tests, the demo) or the Qwen2.5-0.5B shape (benchmarks).' },
  seed: { requiresArg: true, default: '0', describe: `Random seed (an integer from 0 to ${maxSeed}); the same seed gives the same file.` },
  out: { requiresArg: true, describe: 'Where to write the GGUF file.', defaultDescription: 'the user cache path `serve` uses for this shape and seed' },
  reasoning: {
    type: 'boolean',
    default: false,
    describe: 'Give the model a chat template that reasons as Qwen3 does (<think>…</think>, enable_thinking), opening the think block in the prompt.',
  },
  'ends-turns': {
    type: 'boolean',
    default: false,
    describe:
      'Make the end-of-turn token (<|im_end|>) likely at every step, so sampled answers end by themselves after a few to a few dozen tokens (for agent clients such as Claude Code, which treat an answer cut at max_tokens as an error), with a trained context of 32768. Tiny shape only.',
  },
  vocab: { requiresArg: true, describe: 'Vocabulary GGUF to take the tokenizer from.', defaultDescription: "llama.cpp's Qwen2 vocabulary" },
};

function parseSeed(text: unknown): number {
  const value = typeof text === 'string' && /^\d+$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(value) || value > maxSeed) throw new UsageError(`--seed must be an integer from 0 to ${maxSeed}; got ${String(text)}`);
  return value;
}

export async function makeModelCommand(argv: Record<string, unknown>): Promise<void> {
  const shape = argv.shape as ModelShape;
  const seed = parseSeed(argv.seed);
  const variant = { reasoning: argv.reasoning === true, endsTurns: argv['ends-turns'] === true };
  if (variant.endsTurns && shape !== 'tiny') throw new UsageError(`--ends-turns is tuned for the tiny shape only; got --shape ${shape}`);
  const outPath = typeof argv.out === 'string' ? resolve(argv.out) : defaultModelPath(shape, seed, variant);
  const vocabPath = typeof argv.vocab === 'string' ? resolve(argv.vocab) : undefined;
  await mkdir(dirname(outPath), { recursive: true });
  await makeModel({ shape, seed, outPath, ...variant, ...(vocabPath === undefined ? {} : { vocabPath }) });
  const { size } = await stat(outPath);
  process.stdout.write(`${outPath}\n${size} bytes (${(size / 1024 / 1024).toFixed(1)} MiB)\n`);
}
