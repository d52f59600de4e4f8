/**
 * The life of one worker process, shared by `semantic serve` and the supervisor's workers: start the
 * HTTP front and the engine (which logs "listening"), say "ready", wait until asked to stop, drain
 * (drain.ts), close. It returns the exit code: 0, or ExitCode.DrainCut when the drain's
 * deadline or a second signal cut it short. Tests and the supervisor wait for the log lines.
 */
import type { Logger } from 'pino';
import { toErrorPayload, type ErrorPayload } from '../../shared/errors.js';
import type { ModelSummary } from '../../shared/protocol/messages.js';
import type { Config } from '../../shared/config.js';
import { toServerSettings } from '../../shared/server-settings.js';
import { startWorkerServer, type WorkerServer } from './start.js';
import { ExitCode } from '../../shared/exit.js';
import type { StopRequest } from '../../shared/stop-requests.js';
import type { DrainOutcome } from './drain.js';
import type { SwapForwarder } from '../api/ops/admin.js';
import { isLoopbackHost } from '../http/access.js';
import type { FleetMetricsSource } from '../api/ops/metrics.js';
import { startTracing } from '../tracing/tracing.js';

/** What the supervisor's workers forward over IPC; `serve` needs none of it. */
export interface WorkerLifecycleEvents {
  listening(port: number): void | Promise<void>;
  ready(model: ModelSummary, port: number): void | Promise<void>;
  engineDead(error: ErrorPayload): void | Promise<void>;
  draining(): void | Promise<void>;
  stopped(code: number, cut: number): void | Promise<void>;
}

export interface RunWorkerOptions {
  config: Config;
  modelPath: string;
  logger: Logger;
  stop: StopRequest;
  events?: Partial<WorkerLifecycleEvents>;
  /** A supervisor's worker: it binds nothing and serves the connections handed to it (see WorkerServerOptions). */
  connectionsFromSupervisor?: boolean;
  /** Called with the server once it exists, so that handed-over connections can reach it. */
  onServer?: (server: WorkerServer) => void;
  /** A supervisor's worker: admin model swaps are forwarded to the supervisor (a rolling restart). */
  forwardSwap?: SwapForwarder;
  /** A supervisor's worker: GET /metrics answers with the whole fleet's metrics (fleet-scrape.ts). */
  fleetMetrics?: FleetMetricsSource;
}

type Outcome = { kind: 'ready'; model: ModelSummary } | { kind: 'failed'; error: unknown } | { kind: 'stop'; reason: string };

function firstOf(server: WorkerServer, stop: StopRequest): Promise<Outcome> {
  return Promise.race([
    server.ready.then(
      (model): Outcome => ({ kind: 'ready', model }),
      (error: unknown): Outcome => ({ kind: 'failed', error }),
    ),
    stop.requested.then(({ reason }): Outcome => ({ kind: 'stop', reason })),
  ]);
}

async function closeServer(server: WorkerServer, logger: Logger, reason: string): Promise<void> {
  await server.close();
  logger.info({ reason }, 'stopped');
}

export async function runWorker(options: RunWorkerOptions): Promise<number> {
  const { config, logger, stop, events = {} } = options;
  const settings = toServerSettings(config, options.modelPath);
  const tracing = await startTracing(logger);
  // startWorkerServer itself logs {"msg":"listening","port":N} once bound.
  const server = await startWorkerServer({
    ...settings,
    readyMaxPoolPercent: config.readyMaxPoolPercent,
    connectionsFromSupervisor: options.connectionsFromSupervisor === true,
    ...(options.forwardSwap === undefined ? {} : { forwardSwap: options.forwardSwap }),
    ...(options.fleetMetrics === undefined ? {} : { fleetMetrics: options.fleetMetrics }),
    logger,
  });
  const loopback = isLoopbackHost(settings.host);
  if (settings.access.apiKeys.length === 0 && !loopback)
    logger.warn({ host: settings.host }, 'no API key is set: the API routes are open to anyone who can reach this address (the admin routes answer 403 without --admin-key)');
  options.onServer?.(server);
  if (options.connectionsFromSupervisor !== true) await events.listening?.(server.port);

  const outcome = await firstOf(server, stop);
  if (outcome.kind === 'failed') {
    const error = toErrorPayload(outcome.error);
    logger.error({ error }, 'engine failed to start');
    await events.engineDead?.(error);
    await closeServer(server, logger, 'engine dead');
    await tracing.shutdown();
    return ExitCode.Failure;
  }
  if (outcome.kind === 'ready') {
    if (options.connectionsFromSupervisor === true) await events.listening?.(await server.listen());
    logger.info({ model: outcome.model.id, port: server.port }, 'ready');
    await events.ready?.(outcome.model, server.port);
  }
  const { reason, mode } = await stop.requested;
  await events.draining?.();
  const drained = await server.drain({ mode, timeoutMs: config.drainTimeout * 1000, force: stop.forced });
  const code = reportDrain(drained, logger);
  await closeServer(server, logger, reason);
  await tracing.shutdown();
  await events.stopped?.(code, drained.cut);
  return code;
}

/** One line that says how the drain ended and, when it was cut short, what was cut; the exit code. */
function reportDrain(outcome: DrainOutcome, logger: Logger): number {
  const { persisted, cut, cutShort, gaveUp } = outcome;
  const durationMs = Math.round(outcome.durationMs);
  if (cutShort === undefined) {
    logger.info({ persisted, durationMs }, 'drained');
    return ExitCode.Ok;
  }
  logger.warn({ cutShort, cut, persisted, gaveUp, durationMs }, `drain cut short (${cutShort}): ${cut} running requests cut`);
  return ExitCode.DrainCut;
}
