/**
 * Structured logs: one JSON object per line on stdout, so a supervisor, a container runtime or a test
 * can read them line by line. Every line carries a `pid` and the process's `role`, because the
 * supervisor's stdout interleaves the lines of all its workers. `pid` is the writing process unless the
 * line names another one: the supervisor's `{"msg":"worker ready","pid":…}` is about that worker. (pino's
 * `base` fields would repeat the key in such a line; a mixin lets the logged object win instead.)
 *
 * With a log file (`--log-file`) every line also goes to rotated files written by pino-roll, in this
 * process, synchronously like stdout (a line logged before `process.exit` is in the file too). Each
 * process has files of its own (`workerLogFile`): pino-roll's size count, numbering and pruning
 * assume one writer per name, and its `current.log` symlink would be fought over by every process in
 * the folder, so it is not made.
 *
 * Secrets never reach a log line: API keys travel in `authorization` / `x-api-key` headers and in
 * `apiKey` config fields, wherever in a logged object they appear (up to the depth headers sit at).
 */
import { basename, dirname, extname, join } from 'node:path';
import { pino, type DestinationStream, type Level, type Logger } from 'pino';
import pinoRoll from 'pino-roll';

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

/** Where and how log files rotate (the logFile* options). */
export interface LogFileSettings {
  /** `<stem><ext>`: files are `<stem>.<n><ext>`, or `<stem>.<date>.<n><ext>` with a frequency. */
  path: string;
  /** pino-roll's size: digits and k, m or g. */
  size: string;
  frequency: 'daily' | 'hourly' | 'none';
  /** Files kept, the one being written included. */
  count: number;
}

export function logFileSettings(config: {
  logFile: string | undefined;
  logFileSize: string;
  logFileFrequency: LogFileSettings['frequency'];
  logFileCount: number;
}): LogFileSettings | undefined {
  if (config.logFile === undefined) return undefined;
  return { path: withExtension(config.logFile), size: config.logFileSize, frequency: config.logFileFrequency, count: config.logFileCount };
}

/**
 * pino-roll takes the text after the name's last dot as the extension, and numbers files before it:
 * a name without one gets `.log`, so that `semantic` and `semantic.worker-0` stay distinct names.
 */
function withExtension(path: string): string {
  return extname(basename(path)).length >= 2 ? path : path + '.log';
}

/**
 * The log file of a supervisor's worker: `<stem>.worker-<slot><ext>`; `lane` 1 (a rolling restart's
 * replacement while the slot's old worker still drains) adds a `b`, so the two never share a file.
 */
export function workerLogFile(path: string, slot: number, lane: 0 | 1): string {
  const file = withExtension(path);
  const extension = extname(file);
  return join(dirname(file), `${basename(file, extension)}.worker-${slot}${lane === 1 ? 'b' : ''}${extension}`);
}

/**
 * With a time rotation, the period is in the name (`<stem>.<date>.<n><ext>`): pino-roll restarts its
 * numbering each period after a restart, and it prunes by number within a date, so without the date a
 * restart on a later day would number new files below the old ones and prune the file being written.
 */
const dateFormats = { daily: 'yyyy-MM-dd', hourly: 'yyyy-MM-dd-HH' } as const;

/**
 * Stdout, plus the rotated files when `file` is set. pino-roll 4 keeps `limit.count` files in all when
 * it writes synchronously (the new file exists when it prunes) and prunes files of earlier runs too
 * (`removeOtherLogFiles`), so the count holds across restarts.
 */
export async function logDestination(file: LogFileSettings | undefined): Promise<DestinationStream> {
  if (file === undefined) return stdoutDestination();
  const rolled = await pinoRoll({
    file: file.path,
    size: file.size,
    ...(file.frequency === 'none' ? {} : { frequency: file.frequency, dateFormat: dateFormats[file.frequency] }),
    limit: { count: file.count, removeOtherLogFiles: true },
    mkdir: true,
    sync: true,
  });
  // Every level: the logger's own level already filters.
  return pino.multistream([
    { level: 'trace', stream: stdoutDestination() },
    { level: 'trace', stream: rolled },
  ]);
}

/**
 * `destination` is the seam for pretty terminal output and rotated log files (`logDestination`); tests
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
