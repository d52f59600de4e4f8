/**
 * When to restart a worker that exited on its own: exponential backoff, and a crash loop detector that
 * gives up on a slot. A pure function of the slot's exit history (times passed in, no clock read here),
 * so every delay is unit-tested with exact numbers.
 *
 * The count behind the backoff is the slot's exits since its last stable run (one that stayed ready
 * for `stableMs`), not the exits in a fixed time window: a worker that crashes after 40 s of serving,
 * again and again, would never put many exits in one 60 s window, yet it should still back off. A
 * stable run ends the series, so a crash after a day of serving is restarted after the base delay.
 */
import { ConfigError } from '../shared/config.js';

export interface RestartPolicy {
  /** Delay before the first restart of a series; doubled for each further exit. */
  baseDelayMs: number;
  maxDelayMs: number;
  /** A worker that stayed ready this long had a healthy run: its exit starts a new series. */
  stableMs: number;
  /** This many exits within `windowMs`, or this many failed starts in a row, is a crash loop. */
  maxExits: number;
  windowMs: number;
}

export const defaultRestartPolicy: RestartPolicy = {
  baseDelayMs: 1000,
  maxDelayMs: 30_000,
  stableMs: 60_000,
  maxExits: 5,
  windowMs: 60_000,
};

/**
 * Lets tests make a failing worker's restarts fast (`SEMANTIC_RESTART_BASE_DELAY_MS=20`); read only
 * by the supervisor. Not a config option: operators have no reason to tune it.
 */
export const restartBaseDelayEnv = 'SEMANTIC_RESTART_BASE_DELAY_MS';

/** One unexpected exit of a slot's worker. Times in ms on one monotonic clock. */
export interface SlotExit {
  at: number;
  /** When the exited worker reported `ready`; undefined for a failed start. */
  readyAt: number | undefined;
}

export type RestartDecision =
  | { restart: true; delayMs: number; exits: number }
  /** `exits`: the series that made it a crash loop, `reason` says which rule. */
  | { restart: false; reason: string; exits: number };

/** The policy with the base delay from `env`, when set; throws naming the variable when it is not a delay. */
export function restartPolicyFromEnv(env: NodeJS.ProcessEnv): RestartPolicy {
  const raw = env[restartBaseDelayEnv];
  if (raw === undefined || raw === '') return defaultRestartPolicy;
  const baseDelayMs = Number(raw);
  if (!Number.isInteger(baseDelayMs) || baseDelayMs < 1) throw new ConfigError([`env ${restartBaseDelayEnv} must be a whole number of milliseconds ≥ 1, not "${raw}"`]);
  return { ...defaultRestartPolicy, baseDelayMs };
}

/** `history`: the slot's unexpected exits, oldest first; the last one is the exit to decide on. */
export function decideRestart(history: readonly SlotExit[], policy: RestartPolicy = defaultRestartPolicy): RestartDecision {
  const series = currentSeries(history, policy);
  const exits = series.length;
  const reason = crashLoop(series, policy);
  if (reason !== undefined) return { restart: false, reason, exits };
  const delayMs = Math.min(policy.baseDelayMs * 2 ** (exits - 1), policy.maxDelayMs);
  return { restart: true, delayMs, exits };
}

/** The exits since the last stable run, that run's own exit included (it counts as the first). */
function currentSeries(history: readonly SlotExit[], policy: RestartPolicy): readonly SlotExit[] {
  let start = history.length - 1;
  while (start > 0 && !isStable(history[start]!, policy)) start -= 1;
  return history.slice(Math.max(start, 0));
}

function isStable(exit: SlotExit, policy: RestartPolicy): boolean {
  return exit.readyAt !== undefined && exit.at - exit.readyAt >= policy.stableMs;
}

function crashLoop(series: readonly SlotExit[], policy: RestartPolicy): string | undefined {
  const { maxExits, windowMs } = policy;
  if (series.length < maxExits) return undefined;
  const lastN = series.slice(-maxExits);
  if (lastN.every((exit) => exit.readyAt === undefined)) return `${maxExits} failed starts in a row (never ready)`;
  const first = lastN[0]!;
  const last = lastN[lastN.length - 1]!;
  if (last.at - first.at <= windowMs) return `${maxExits} exits within ${windowMs / 1000} s`;
  return undefined;
}
