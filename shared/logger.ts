/**
 * Structured logs: one JSON object per line on stdout, so a supervisor, a container runtime or a test
 * can read them line by line. Every line carries a `pid` and the process's `role`, because the
 * supervisor's stdout interleaves the lines of all its workers. `pid` is the writing process unless the
 * line names another one: the supervisor's `{"msg":"worker ready","pid":…}` is about that worker. (pino's
 * `base` fields would repeat the key in such a line; a mixin lets the logged object win instead.)
 *
 * Secrets never reach a log line: API keys travel in `authorization` / `x-api-key` headers and in
 * `apiKey` config fields, wherever in a logged object they appear (up to the depth headers sit at).
 */
import { pino, type DestinationStream, type Level, type Logger } from 'pino';

export type ProcessRole = 'serve' | 'worker' | 'supervisor';
export type LogLevel = Level | 'silent';

const secretKeys = ['authorization', '["x-api-key"]', 'apiKey', 'apiKeys', 'adminKey'];

/** `req.headers.authorization` is two levels down; pino's redaction wildcards match one level each. */
export const redactedPaths: string[] = secretKeys.flatMap((key) => {
  const dotted = key.startsWith('[') ? key : '.' + key;
  return [key, '*' + dotted, '*.*' + dotted];
});

export const redactionCensor = '[redacted]';

/**
 * Synchronous writes: a line logged just before `process.exit` is never lost, and lines under the pipe
 * buffer size from several worker processes sharing one stdout never interleave mid-line.
 */
function stdoutDestination(): DestinationStream {
  return pino.destination({ dest: 1, sync: true });
}

/**
 * `destination` is the seam for pretty terminal output and rotated log files (a later issue); tests
 * pass a stream to read what was logged.
 */
export function createLogger(role: ProcessRole, level: LogLevel, destination: DestinationStream = stdoutDestination()): Logger {
  return pino(
    {
      level,
      base: null,
      mixin: () => ({ pid: process.pid, role }),
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: redactedPaths, censor: redactionCensor },
    },
    destination,
  );
}
