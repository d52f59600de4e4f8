/**
 * When to restart a worker that exited on its own. This function is the one seam for the restart
 * policy: exponential backoff and crash-loop detection (a later issue) replace its body, and the
 * supervisor already honours both of its answers.
 */

export interface WorkerExit {
  /** Worker slot, 0-based: the restarted process takes the same slot. */
  slot: number;
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Whether the exited process had reported `ready`: a crash before that is a failed start. */
  wasReady: boolean;
  /** Unexpected exits of this slot so far, this one included. */
  exitsInSlot: number;
}

/** A short fixed pause, so a worker that fails at once does not spin the CPU. */
export const restartDelayMs = 1000;

/** Milliseconds to wait before restarting the slot, or null to leave it down. */
export function restartDelay(_exit: WorkerExit): number | null {
  return restartDelayMs;
}
