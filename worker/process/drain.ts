/**
 * A worker's multi-phase drain (docs/operations.md has the sequence and its Kubernetes settings):
 * 1. readiness 503 and the listen socket closed; requests still arriving on open keep-alive
 *    connections are refused (shutdown: 503 + Retry-After) or served (handover: a replacement listens)
 *    and their connections closed;
 * 2. running requests finish — streams run to their end — and waiting ones get 503 (in handover,
 *    the connections are closed once no request has arrived for HANDOVER_QUIET_MS: none is refused);
 * 3. every idle agent's unwritten turn is written to its cache file, and the writes are waited for.
 * The deadline or a second signal cuts it short: running requests end with ERR_DRAINING and what the
 * agents' cells hold is still written (bounded), then the worker exits with ExitCode.DrainCut.
 */
import type { Logger } from 'pino';
import type { DrainReport, EngineClient } from '../engine-client.js';
import type { DrainMode, Router } from '../http/router.js';
import type { HttpServer } from '../http/http-server.js';

/**
 * How long a handover waits, with nothing in flight, for requests to stop arriving on the old
 * worker's open connections before it closes them. Each request answered there carries
 * `Connection: close`; what is left are idle pooled connections, which clients close themselves after
 * their keep-alive timeout (4 s in Node's fetch/undici). Closing one from this side is safe only when
 * no request is on its way on it, which the client alone knows: waiting out the clients' own timeout
 * leaves no such race for them, at the price of 5 s per worker in a rolling restart.
 */
export const HANDOVER_QUIET_MS = 5000;
/** After a cut, how long the engine may take to end the current step and write the agents' caches. */
export const CUT_GRACE_MS = 10_000;

export interface DrainOptions {
  mode: DrainMode;
  timeoutMs: number;
  /** Resolves when a second signal asks to stop now. */
  force: Promise<unknown>;
}

export interface DrainOutcome extends DrainReport {
  /** Why the drain was cut short; undefined when everything finished. */
  cutShort: 'deadline' | 'second signal' | undefined;
  /** After the cut, the engine did not finish writing caches within CUT_GRACE_MS: figures unknown. */
  gaveUp: boolean;
  durationMs: number;
}

interface DrainParts {
  http: HttpServer;
  router: Router;
  engine: EngineClient;
  logger: Logger;
}

function delay(ms: number): { promise: Promise<void>; cancel(): void } {
  let timer: NodeJS.Timeout | undefined;
  const promise = new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)));
  return { promise, cancel: () => clearTimeout(timer) };
}

async function finishEverything({ http, router, engine }: DrainParts, mode: DrainMode): Promise<DrainReport> {
  if (mode === 'handover') {
    await router.whenIdle(HANDOVER_QUIET_MS);
    http.close(); // in the same turn as the idle check: no request can slip in between
  }
  const report = await engine.drain();
  await router.whenIdle(0); // the last responses are written
  return report;
}

export async function drainWorker(parts: DrainParts, options: DrainOptions): Promise<DrainOutcome> {
  const { http, router, engine, logger } = parts;
  const started = performance.now();
  router.drain(options.mode);
  http.closeListener();
  logger.info({ mode: options.mode, inFlight: router.inFlight(), timeoutMs: options.timeoutMs }, 'draining');
  const finished = finishEverything(parts, options.mode);
  const deadline = delay(options.timeoutMs);
  const first = await Promise.race([
    finished.then((report) => ({ report, cutShort: undefined })),
    deadline.promise.then(() => ({ report: undefined, cutShort: 'deadline' as const })),
    options.force.then(() => ({ report: undefined, cutShort: 'second signal' as const })),
  ]);
  deadline.cancel();
  if (first.report !== undefined) return { ...first.report, cutShort: undefined, gaveUp: false, durationMs: performance.now() - started };
  router.drain('shutdown');
  engine.cut();
  const grace = delay(CUT_GRACE_MS);
  const report = await Promise.race([engine.drain(), grace.promise.then(() => undefined)]);
  grace.cancel();
  return { persisted: report?.persisted ?? 0, cut: report?.cut ?? 0, cutShort: first.cutShort, gaveUp: report === undefined, durationMs: performance.now() - started };
}
