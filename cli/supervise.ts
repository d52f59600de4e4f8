/**
 * `semantic supervise`: the supervisor process. It resolves the model once (so N workers do not race
 * to generate the demo model) and forks the workers as this same CLI's hidden `worker` command.
 * SIGTERM/SIGINT drains them all (a second signal cuts the drains short), SIGHUP replaces them one by
 * one. It exits 0 once every worker drained in full, 3 when a drain was cut, and 1 when every worker
 * is in a crash loop.
 */
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { createLogger, logDestination, logFileSettings } from '../shared/logger.js';
import { resolvedModelsDir, threadsPerProcess } from '../shared/server-settings.js';
import { Supervisor } from '../supervisor/supervisor.js';
import { restartPolicyFromEnv } from '../supervisor/restart-policy.js';
import { configFromArgv } from './config-flags.js';
import { ExitCode } from '../shared/exit.js';
import { resolveModelPath } from './model-path.js';
import { StopRequest, stopOnSignals } from '../shared/stop-requests.js';

/** This CLI's entry point, a sibling of this module both in dist/ and in the source tree. */
const cliScript = fileURLToPath(new URL('./main.js', import.meta.url));

export async function supervise(argv: Record<string, unknown>): Promise<number> {
  const config = configFromArgv(argv);
  const restartPolicy = restartPolicyFromEnv(process.env);
  const logger = createLogger('supervisor', config.logLevel, await logDestination(logFileSettings(config)));
  const stop = new StopRequest();
  // Until the workers exist, a second signal exits at once and SIGHUP has nothing to restart.
  let onSecondSignal = (_signal: NodeJS.Signals): void => process.exit(ExitCode.Failure);
  let onHangup = (): void => logger.warn({ signal: 'SIGHUP' }, 'no workers yet: SIGHUP ignored');
  stopOnSignals(stop, logger, (signal) => onSecondSignal(signal));
  process.on('SIGHUP', () => onHangup());
  const modelPath = await resolveModelPath(config, logger);
  if (stop.isRequested) return ExitCode.Ok;
  // The workers share the machine's CPUs: each gets its share of llama.cpp threads, not all of them.
  const threads = threadsPerProcess(config.threads, availableParallelism(), config.workers);
  logger.info({ workers: config.workers, threadsPerWorker: threads, cpus: availableParallelism() }, 'llama.cpp threads per worker');
  const supervisor = new Supervisor({
    workers: config.workers,
    // Fixed here: a swap changes the workers' model, never the folder swaps may load from.
    workerConfig: { ...config, model: modelPath, threads, modelsDir: resolvedModelsDir(config, modelPath) },
    logger,
    workerScript: cliScript,
    workerArgs: ['worker'],
    restartPolicy,
    scrapeTimeoutMs: config.scrapeTimeoutMs,
  });
  onSecondSignal = (signal) => supervisor.force(signal);
  onHangup = () => void supervisor.rollingRestart();
  void stop.requested.then(({ reason }) => supervisor.stop(reason));
  await supervisor.start();
  const code = await supervisor.stopped;
  logger.info({ code }, 'stopped');
  return code;
}
