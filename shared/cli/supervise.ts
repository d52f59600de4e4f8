/**
 * `semantic supervise`: the supervisor process. It resolves the model once (so N workers do not race
 * to generate the demo model), forks the workers as this same CLI's hidden `worker` command, and exits
 * 0 once a SIGTERM/SIGINT has stopped all of them.
 */
import { fileURLToPath } from 'node:url';
import { createLogger } from '../logger.js';
import { Supervisor } from '../../supervisor/supervisor.js';
import { configFromArgv } from './config-flags.js';
import { ExitCode } from './exit.js';
import { resolveModelPath } from './model-path.js';
import { StopRequest, stopOnSignals } from './stop.js';

/** This CLI's entry point, a sibling of this module both in dist/ and in the source tree. */
const cliScript = fileURLToPath(new URL('./main.js', import.meta.url));

export async function supervise(argv: Record<string, unknown>): Promise<number> {
  const config = configFromArgv(argv);
  const logger = createLogger('supervisor', config.logLevel);
  const stop = new StopRequest();
  // A second signal exits at once while no worker runs yet, and kills the running workers after that.
  let onSecondSignal = (_signal: NodeJS.Signals): void => process.exit(ExitCode.Failure);
  stopOnSignals(stop, logger, (signal) => onSecondSignal(signal));
  const modelPath = await resolveModelPath(config, logger);
  if (stop.isRequested) return ExitCode.Ok;
  const supervisor = new Supervisor({
    workers: config.workers,
    workerConfig: { ...config, model: modelPath },
    logger,
    workerScript: cliScript,
    workerArgs: ['worker'],
  });
  onSecondSignal = (signal) => void supervisor.stop(signal);
  void stop.requested.then(({ reason }) => supervisor.stop(reason));
  await supervisor.start();
  await supervisor.stopped;
  logger.info('stopped');
  return ExitCode.Ok;
}
