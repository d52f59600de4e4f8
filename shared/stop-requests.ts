/**
 * One way for a long-running command to be asked to stop, whatever asks: SIGTERM, SIGINT, the
 * supervisor's `drain`, or the supervisor's death. The first request starts the drain (its reason and
 * mode are logged); any later one forces it: the drain is cut short (docs/operations.md).
 */
import type { Logger } from 'pino';
import type { DrainMode } from './protocol/ipc.js';

export interface StopReason {
  reason: string;
  mode: DrainMode;
}

export class StopRequest {
  /** Resolves with the first request. */
  readonly requested: Promise<StopReason>;
  /** Resolves with the reason of the second request: stop now. */
  readonly forced: Promise<string>;
  private first: StopReason | undefined;
  private resolveRequested!: (stop: StopReason) => void;
  private resolveForced!: (reason: string) => void;

  constructor() {
    this.requested = new Promise((resolve) => (this.resolveRequested = resolve));
    this.forced = new Promise((resolve) => (this.resolveForced = resolve));
  }

  get isRequested(): boolean {
    return this.first !== undefined;
  }

  request(reason: string, mode: DrainMode = 'shutdown'): void {
    if (this.first !== undefined) return this.resolveForced(reason);
    this.first = { reason, mode };
    this.resolveRequested(this.first);
  }
}

/**
 * SIGTERM/SIGINT ask to stop; a second signal forces it. `onForce` replaces that second request
 * (the supervisor forwards it to its workers instead).
 */
export function stopOnSignals(stop: StopRequest, logger: Logger, onForce?: (signal: NodeJS.Signals) => void): void {
  const onSignal = (signal: NodeJS.Signals): void => {
    if (!stop.isRequested) {
      logger.info({ signal }, 'stopping');
      stop.request(signal);
      return;
    }
    logger.warn({ signal }, 'second signal: stopping now');
    if (onForce !== undefined) onForce(signal);
    else stop.request(signal);
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}
