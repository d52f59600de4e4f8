/** `semantic serve`: one worker process, no supervisor (development, one process per container). */
import { createLogger } from '../logger.js';
import { configFromArgv } from './config-flags.js';
import { ExitCode } from './exit.js';
import { resolveModelPath } from './model-path.js';
import { runWorker } from './run-worker.js';
import { StopRequest, stopOnSignals } from './stop.js';

export async function serve(argv: Record<string, unknown>): Promise<number> {
  const config = configFromArgv(argv);
  const logger = createLogger('serve', config.logLevel);
  const stop = new StopRequest();
  stopOnSignals(stop, logger);
  const modelPath = await resolveModelPath(config, logger);
  if (stop.isRequested) return ExitCode.Ok;
  return runWorker({ config, modelPath, logger, stop });
}
