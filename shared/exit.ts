/**
 * Exit codes of the `semantic` command: 0 done, 1 failed while running, 2 the invocation was wrong
 * (unknown flag, bad option value, missing file), 3 a drain was cut short (its deadline passed or a
 * second SIGTERM came) and requests still running were ended unfinished. Scripts and process managers tell "fix your command
 * line" from "the server broke" by this code alone.
 */
import { ConfigError } from './config.js';

export const ExitCode = { Ok: 0, Failure: 1, Usage: 2, DrainCut: 3 } as const;

/** A command line that cannot work as given; exits 2 with the message and no stack. */
export class UsageError extends Error {
  readonly code = 'ERR_USAGE';
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** What to print on stderr and which code to exit with for an error that ended a command. */
export function describeFailure(error: unknown): { text: string; exitCode: number } {
  if (error instanceof ConfigError) {
    const lines = error.problems.map((problem) => `  ${problem}`).join('\n');
    return { text: `semantic: invalid configuration:\n${lines}`, exitCode: ExitCode.Usage };
  }
  if (error instanceof UsageError) return { text: `semantic: ${error.message}`, exitCode: ExitCode.Usage };
  const text = error instanceof Error ? (error.stack ?? error.message) : String(error);
  return { text: `semantic: ${text}`, exitCode: ExitCode.Failure };
}
