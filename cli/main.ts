#!/usr/bin/env node
/**
 * The `semantic` command. Each command's work lives in its own module; this file only declares the
 * command line and turns every way a command can end into an exit code (see exit.ts): usage and
 * config errors print one message and exit 2 before anything starts.
 */
import yargs, { type Argv } from 'yargs';
import { hideBin } from 'yargs/helpers';
import { configFlags, lastOfRepeated } from './config-flags.js';
import { describeFailure, UsageError } from '../shared/exit.js';
import { makeModelCommand, makeModelFlags } from './make-model.js';
import { printConfig } from './print-config.js';
import { serve } from './serve.js';
import { supervise } from './supervise.js';
import { printVersion, versionFlags } from './version.js';
import { worker } from '../worker/process/supervised.js';

type Handler = (argv: Record<string, unknown>) => void | number | Promise<void | number>;

/** Long-running commands resolve with their exit code; the process exits with it, open handles or not. */
function run(handler: Handler): (argv: Record<string, unknown>) => Promise<void> {
  return async (argv) => {
    const code = await handler(argv);
    if (typeof code === 'number') process.exit(code);
  };
}

function buildCli(args: string[]): Argv {
  return (
    yargs(args)
      .scriptName('semantic')
      .usage('$0 <command> [options]\n\nSemantic serves one local GGUF model to many agents over OpenAI-compatible HTTP.')
      // Values stay text for the config's own checks; only kebab-case keys, so an unknown flag is named once.
      .parserConfiguration({ 'parse-numbers': false, 'parse-positional-numbers': false, 'duplicate-arguments-array': true, 'camel-case-expansion': false })
      .middleware(lastOfRepeated, true)
      .command('serve', 'Run one server process (no supervisor).', (y) => y.options(configFlags('serve')), run(serve))
      .command('supervise', 'Run N worker processes on one port, restarting any that crash.', (y) => y.options(configFlags('supervise')), run(supervise))
      .command('version', 'Print the Semantic version and the llama.cpp release it is built against.', (y) => y.options(versionFlags), run(printVersion))
      .command('config', 'Print the effective configuration as JSON (defaults, --config file, env, flags).', (y) => y.options(configFlags('config')), run(printConfig))
      .command('make-model', 'Write a random-weight GGUF model for tests, demos and benchmarks.', (y) => y.options(makeModelFlags), run(makeModelCommand))
      // Forked by `supervise`; hidden from --help.
      .command('worker', false, (y) => y, run(worker))
      .demandCommand(1, 'Name a command: serve, supervise, version, config or make-model.')
      .recommendCommands()
      .strict()
      .version(false)
      .help()
      .wrap(Math.min(110, process.stdout.columns || 110))
      .fail((message: string | undefined, error: Error | undefined) => {
        throw error ?? new UsageError(`${message ?? 'invalid command line'}\nRun \`semantic --help\` for the commands and options.`);
      })
  );
}

async function main(): Promise<void> {
  try {
    await buildCli(hideBin(process.argv)).parseAsync();
  } catch (error) {
    const failure = describeFailure(error);
    process.stderr.write(failure.text + '\n');
    process.exit(failure.exitCode);
  }
}

await main();
