/**
 * `semantic config`: the effective config as JSON, exactly what `serve`/`supervise` would run with
 * given the same flags, env and file. Without `model` it names the demo model's path (made on first
 * `serve`, not here) and the id it would be served under.
 */
import { defaultModelId } from '../shared/server-settings.js';
import { defaultModelPath } from '../shared/gguf/make-model.js';
import { configFromArgv } from './config-flags.js';
import { demoModelShape } from './model-path.js';

export function printConfig(argv: Record<string, unknown>): void {
  const config = configFromArgv(argv);
  const model = config.model ?? defaultModelPath(demoModelShape);
  // Keys are secrets: the output says whether they are set, never what they are.
  const redact = (value: string | undefined): string | undefined => (value === undefined ? undefined : '<redacted>');
  const effective = { ...config, model, modelId: config.modelId ?? defaultModelId(model), apiKeys: redact(config.apiKeys), adminKey: redact(config.adminKey) };
  process.stdout.write(JSON.stringify(effective, null, 2) + '\n');
}
