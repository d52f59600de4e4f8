/** `semantic serve`: one worker process, no supervisor (development, one process per container). */
import { createLogger, logDestination, logFileSettings } from '../shared/logger.js';
import { configFromArgv } from './config-flags.js';
import { ExitCode } from '../shared/exit.js';
import { resolveModelPath } from './model-path.js';
import { runWorker } from '../worker/process/life.js';
import { StopRequest, stopOnSignals } from '../shared/stop-requests.js';

export async function serve(argv: Record<string, unknown>): Promise<number> {
  const config = configFromArgv(argv);
  const logger = createLogger('serve', config.logLevel, await logDestination(logFileSettings(config)));
  const stop = new StopRequest();
  stopOnSignals(stop, logger);
  const modelPath = await resolveModelPath(config, logger);
  if (stop.isRequested) return ExitCode.Ok;
  return runWorker({ config, modelPath, logger, stop });
}
