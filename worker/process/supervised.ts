/**
 * The hidden `semantic worker` command: a process forked by `semantic supervise`. Its config comes
 * resolved from the supervisor (env, re-checked here); its lifecycle goes back over IPC. It stops on
 * the supervisor's `drain`, on its own signals, and when the IPC channel closes, which means the
 * supervisor died: a worker never outlives its supervisor.
 */
import { configFromJson } from '../../shared/config.js';
import { createLogger, logDestination, logFileSettings } from '../../shared/logger.js';
import { hasSupervisor, listenToSupervisor, sendToSupervisor, workerConfigEnv } from '../../shared/protocol/ipc.js';
import { UsageError } from '../../shared/exit.js';
import { runWorker } from './life.js';
import { StopRequest, stopOnSignals } from '../../shared/stop-requests.js';
import type { SwapAnswer } from '../api/ops/admin.js';
import type { WorkerServer } from './start.js';
import { FleetScrapes, reportMetrics } from './fleet-scrape.js';

/**
 * An admin model swap on a supervised worker is the supervisor's: it becomes a rolling restart onto
 * the new model. Asks go out one at a time and the supervisor answers each in order.
 */
class SupervisorSwaps {
  private waiting: ((answer: SwapAnswer) => void)[] = [];

  async ask(path: string, id: string): Promise<SwapAnswer> {
    if (!hasSupervisor()) return { accepted: false, reason: 'the supervisor is gone' };
    let resolve!: (answer: SwapAnswer) => void;
    const answer = new Promise<SwapAnswer>((settle) => (resolve = settle));
    this.waiting.push(resolve);
    try {
      await sendToSupervisor({ type: 'swap_model', path, id });
    } catch (error) {
      // Unsent, so never answered: its place in the queue would pair later answers with the wrong asks.
      this.waiting.splice(this.waiting.indexOf(resolve), 1);
      throw error;
    }
    return answer;
  }

  answered(message: SwapAnswer): void {
    this.waiting.shift()?.(message);
  }
}

export async function worker(): Promise<number> {
  if (!hasSupervisor()) throw new UsageError('`semantic worker` is started by `semantic supervise`, not by hand');
  const config = configFromJson(process.env[workerConfigEnv] ?? '', `env ${workerConfigEnv}`);
  const modelPath = config.model;
  if (modelPath === undefined) throw new UsageError(`env ${workerConfigEnv} names no model: the supervisor resolves it before forking`);
  const logger = createLogger('worker', config.logLevel, await logDestination(logFileSettings(config)));
  const stop = new StopRequest();
  stopOnSignals(stop, logger);
  const swaps = new SupervisorSwaps();
  const scrapes = new FleetScrapes(config.scrapeTimeoutMs, logger);
  let server: WorkerServer | undefined;
  listenToSupervisor({
    // Sent only once this worker said it is ready, so the server exists by then.
    onConnection: (socket) => (server === undefined ? socket.destroy() : server.adopt(socket)),
    onMessage: (message) => {
      if (message.type === 'drain') stop.request('supervisor drain', message.mode);
      else if (message.type === 'swap_answer') swaps.answered(message);
      else if (message.type === 'metrics_answer') scrapes.answered(message);
      else void reportMetrics(message.id, server === undefined ? undefined : () => server!.processMetricsJson(), logger);
    },
    onInvalid: (reason) => logger.error({ reason }, 'invalid IPC message from the supervisor (a bug)'),
    onDisconnect: () => {
      logger.warn('the supervisor is gone (IPC channel closed): stopping');
      stop.request('supervisor gone');
    },
  });
  await sendToSupervisor({ type: 'starting' });
  return runWorker({
    config,
    modelPath,
    logger,
    stop,
    connectionsFromSupervisor: true,
    onServer: (created) => (server = created),
    forwardSwap: (path, id) => swaps.ask(path, id),
    fleetMetrics: () => scrapes.ask(),
    events: {
      listening: (port) => sendToSupervisor({ type: 'listening', port }),
      ready: (model, port) => sendToSupervisor({ type: 'ready', port, model: model.id }),
      engineDead: (error) => sendToSupervisor({ type: 'engine_dead', error }),
      draining: () => sendToSupervisor({ type: 'draining' }),
      stopped: (code, cut) => sendToSupervisor({ type: 'stopped', code, cut }),
    },
  });
}
