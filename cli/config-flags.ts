/**
 * CLI flags derived from the config's option table, so `--help`, the flags and the checks cannot
 * drift apart. yargs is told no defaults: a flag that is absent must not hide the config file or env
 * below it. Values reach the config as text (number parsing is off), so a flag and an env variable are
 * read by the same code and fail with the same message.
 */
import type { Options } from 'yargs';
import { envName, flagName, loadConfig, optionNames, optionSpecs, type Config, type OptionName, type OptionSpec } from '../shared/config.js';

/** The options of a command that runs with a config; `workers` only where it means something. */
export type ConfigCommand = 'serve' | 'supervise' | 'config';

const shownDefaults: Partial<Record<OptionName, string>> = {
  model: 'the generated demo model',
  modelId: 'the model file name without .gguf',
  maxBodyBytes: '4194304 (4 MiB)',
};

function flagOption(option: OptionName): Options {
  const spec = optionSpecs[option];
  const shownDefault = shownDefaults[option] ?? String(spec.default);
  const describe = `${spec.doc} Allowed: ${spec.allowed}. Env: ${envName(option)}.`;
  if (spec.kind === 'boolean') return { type: 'boolean', describe, defaultDescription: shownDefault };
  // Repeatable (the parser keeps only the last of other repeated flags): every occurrence is kept.
  if (spec.kind === 'list') return { type: 'string', array: true, requiresArg: true, describe, defaultDescription: 'none' };
  return { requiresArg: true, describe, defaultDescription: shownDefault };
}

export function configFlags(command: ConfigCommand): Record<string, Options> {
  const flags: Record<string, Options> = {
    config: { requiresArg: true, describe: 'JSON file of options, keyed as `semantic config` prints them; env and flags override it.' },
  };
  for (const option of optionNames) {
    const spec: OptionSpec<unknown> = optionSpecs[option];
    if (spec.superviseOnly === true && command === 'serve') continue;
    flags[flagName(option)] = flagOption(option);
  }
  return flags;
}

/**
 * The parser keeps every occurrence of a repeated flag: a list option (`--model-alias`) keeps them all,
 * any other flag its last, as a CLI user expects of `--port 1 --port 2`.
 */
export function lastOfRepeated(argv: Record<string, unknown>): void {
  const lists = new Set(optionNames.filter((option) => optionSpecs[option].kind === 'list').map(flagName));
  for (const [key, value] of Object.entries(argv)) if (key !== '_' && Array.isArray(value) && !lists.has(key)) argv[key] = value.at(-1);
}

/** The config a command runs with: its flags over `process.env` over the `--config` file over defaults. */
export function configFromArgv(argv: Record<string, unknown>): Config {
  const flags: Partial<Record<OptionName, unknown>> = {};
  for (const option of optionNames) flags[option] = argv[flagName(option)];
  const file = argv.config;
  return loadConfig({ file: typeof file === 'string' ? file : undefined, env: process.env, flags });
}
