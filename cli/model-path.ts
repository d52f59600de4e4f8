/**
 * Which GGUF file to serve. A given `model` must exist (checked at startup, exit 2, not when the
 * inference thread fails to open it); no `model` means the generated demo model, made once into the
 * user cache. The supervisor resolves it before forking, so its workers never race to generate it.
 */
import { statSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Logger } from 'pino';
import { ConfigError, type Config } from '../shared/config.js';
import { ensureModel } from '../shared/gguf/make-model.js';

/** The demo model's shape: small enough to generate and load in seconds on a laptop CPU. */
export const demoModelShape = 'tiny';

export async function resolveModelPath(config: Config, logger: Logger): Promise<string> {
  if (config.model !== undefined) return checkedModelFile(config.model);
  const path = await ensureModel(demoModelShape);
  logger.warn(
    { model: path },
    'no --model given: serving the generated demo model, whose weights are random, so its output is gibberish (pass --model path/to/model.gguf for real output)',
  );
  return path;
}

function checkedModelFile(model: string): string {
  const path = resolve(model);
  let isFile: boolean;
  try {
    isFile = statSync(path).isFile();
  } catch (error) {
    throw new ConfigError([`model ${model} cannot be opened: ${(error as Error).message}`]);
  }
  if (!isFile) throw new ConfigError([`model ${model} is not a file (a GGUF model file is expected)`]);
  return path;
}
