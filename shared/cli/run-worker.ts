/**
 * The life of one worker process, shared by `semantic serve` and the supervisor's workers: start the
 * HTTP front and the engine (which logs "listening"), say "ready", wait until asked to stop, close. It returns
 * the exit code; the caller exits. Tests and the supervisor wait for the `listening` and `ready` lines.
 *
 * Stopping is a plain close for now. The multi-phase drain (readiness 503, finish in-flight streams,
 * persist caches, deadline) replaces `close` here in a later issue.
 */
import type { Logger } from 'pino';
import { toErrorPayload, type ErrorPayload } from '../errors.js';
import type { ModelSummary } from '../protocol/messages.js';
import { toServerSettings, type Config } from '../config.js';
import { startWorkerServer, type WorkerServer } from '../../worker/main.js';
import { ExitCode } from './exit.js';
import type { StopRequest } from './stop.js';

/** What the supervisor's workers forward over IPC; `serve` needs none of it. */
export interface WorkerLifecycleEvents {
  listening(port: number): void | Promise<void>;
  ready(model: ModelSummary, port: number): void | Promise<void>;
  engineDead(error: ErrorPayload): void | Promise<void>;
}

export interface RunWorkerOptions {
  config: Config;
  modelPath: string;
  logger: Logger;
  stop: StopRequest;
  events?: Partial<WorkerLifecycleEvents>;
}

type Outcome = { kind: 'ready'; model: ModelSummary } | { kind: 'failed'; error: unknown } | { kind: 'stop'; reason: string };

function firstOf(server: WorkerServer, stop: StopRequest): Promise<Outcome> {
  return Promise.race([
    server.ready.then(
      (model): Outcome => ({ kind: 'ready', model }),
      (error: unknown): Outcome => ({ kind: 'failed', error }),
    ),
    stop.requested.then((reason): Outcome => ({ kind: 'stop', reason })),
  ]);
}

async function closeServer(server: WorkerServer, logger: Logger, reason: string): Promise<void> {
  await server.close();
  logger.info({ reason }, 'stopped');
}

export async function runWorker(options: RunWorkerOptions): Promise<number> {
  const { config, logger, stop, events = {} } = options;
  const settings = toServerSettings(config, options.modelPath);
  // startWorkerServer itself logs {"msg":"listening","port":N} once bound.
  const server = await startWorkerServer({ ...settings, logger });
  await events.listening?.(server.port);

  const outcome = await firstOf(server, stop);
  if (outcome.kind === 'failed') {
    const error = toErrorPayload(outcome.error);
    logger.error({ error }, 'engine failed to start');
    await events.engineDead?.(error);
    await closeServer(server, logger, 'engine dead');
    return ExitCode.Failure;
  }
  if (outcome.kind === 'ready') {
    logger.info({ model: outcome.model.id, port: server.port }, 'ready');
    await events.ready?.(outcome.model, server.port);
  }
  const reason = await stop.requested;
  await closeServer(server, logger, reason);
  return ExitCode.Ok;
}
