/**
 * One way for a long-running command to be asked to stop, whatever asks: SIGTERM, SIGINT, the
 * supervisor's `drain`, or the supervisor's death. The first request wins; the reason is logged.
 */
import type { Logger } from 'pino';

export class StopRequest {
  /** Resolves with the first reason given. */
  readonly requested: Promise<string>;
  private reason: string | undefined;
  private resolve!: (reason: string) => void;

  constructor() {
    this.requested = new Promise((resolve) => (this.resolve = resolve));
  }

  get isRequested(): boolean {
    return this.reason !== undefined;
  }

  request(reason: string): void {
    if (this.reason !== undefined) return;
    this.reason = reason;
    this.resolve(reason);
  }
}

/**
 * SIGTERM/SIGINT ask to stop. A second signal means the caller will not wait: `onForce` runs (the
 * default exits 1 at once), which is also where the drain's forced exit will hook in.
 */
export function stopOnSignals(stop: StopRequest, logger: Logger, onForce: (signal: NodeJS.Signals) => void = forceExit): void {
  const onSignal = (signal: NodeJS.Signals): void => {
    if (!stop.isRequested) {
      logger.info({ signal }, 'stopping');
      stop.request(signal);
      return;
    }
    logger.warn({ signal }, 'second signal: stopping now');
    onForce(signal);
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}

function forceExit(): void {
  process.exit(1);
}
