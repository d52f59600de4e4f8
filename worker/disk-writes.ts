/**
 * Whether agents' cache files are being written, as the front learns it from the inference thread:
 * each failed write (a full or read-only cache dir, the file thread dying) is counted by reason and
 * logged; turns are still served from the context and the RAM tier, but a restart would find older
 * files or none. Readiness says `degraded` from a failure until a write succeeds again.
 */
import type { Logger } from 'pino';
import type { PersistedMessage, PersistFailedMessage } from '../shared/protocol/messages.js';

export class DiskWrites {
  /** Failed writes since start, by reason (an errno code, ERR_WRITER_EXITED or unknown). */
  readonly failures = new Map<string, number>();
  /** The last failure, while no write has succeeded since. */
  failing: { reason: string; message: string } | undefined;

  constructor(private readonly log: Logger) {}

  get failed(): number {
    let total = 0;
    for (const count of this.failures.values()) total += count;
    return total;
  }

  written(message: PersistedMessage): void {
    this.failing = undefined;
    this.log.info({ agentId: message.agentId, bytes: message.bytes }, 'agent cache persisted');
  }

  writeFailed(message: PersistFailedMessage): void {
    const { agentId, reason } = message;
    this.failures.set(reason, (this.failures.get(reason) ?? 0) + 1);
    this.failing = { reason, message: message.message };
    this.log.warn({ agentId, reason, error: message.message, failures: this.failed }, 'agent cache write failed');
  }
}
