/**
 * The fleet's memory trend over a soak: does the service, as an operator sees it, need more memory at
 * the end of the hour than after its warm-up? A worker's own life is too short to say: a rolling
 * restart ends it every 5 minutes, and a fresh process climbs for its first minutes towards the high
 * water mark of two V8 heaps and glibc's arenas, so a growth figure per life measures that climb, and a
 * leak that survives restarts (in the supervisor, in the cache dir's effect on a new worker's start,
 * in what a worker inherits) does not show in any one life at all.
 *
 * So the trend is a least-squares line through the workers' summed RSS at every sample where the whole
 * fleet is up (a handover's third process would add a step that is not growth), from the end of the
 * fleet's warm-up to the last sample. Periodic swings (the restart cycle, the collectors' sawtooth) fall
 * on both sides of the line; a leak tilts it.
 */
import type { Sample } from './soak-sampler.js';

export interface FleetTrend {
  fromSeconds: number;
  toSeconds: number;
  samples: number;
  /** The fitted line's value at the first and the last second of the span. */
  startBytes: number;
  endBytes: number;
  growthPercent: number;
}

export function fleetRssTrend(samples: readonly Sample[], workers: number, warmupSeconds: number): FleetTrend | undefined {
  const points = samples
    .filter((sample) => sample.atSeconds >= warmupSeconds && sample.workers.length === workers)
    .map((sample) => ({ x: sample.atSeconds, y: sample.workers.reduce((sum, worker) => sum + worker.rssBytes, 0) }));
  if (points.length < 3) return undefined;
  const fit = leastSquares(points);
  if (fit === undefined) return undefined;
  const fromSeconds = points[0]!.x;
  const toSeconds = points[points.length - 1]!.x;
  const startBytes = fit.intercept + fit.slope * fromSeconds;
  const endBytes = fit.intercept + fit.slope * toSeconds;
  return { fromSeconds, toSeconds, samples: points.length, startBytes, endBytes, growthPercent: ((endBytes - startBytes) / startBytes) * 100 };
}

function leastSquares(points: readonly { x: number; y: number }[]): { slope: number; intercept: number } | undefined {
  const n = points.length;
  const meanX = points.reduce((sum, p) => sum + p.x, 0) / n;
  const meanY = points.reduce((sum, p) => sum + p.y, 0) / n;
  let covariance = 0;
  let varianceX = 0;
  for (const p of points) {
    covariance += (p.x - meanX) * (p.y - meanY);
    varianceX += (p.x - meanX) ** 2;
  }
  if (varianceX === 0) return undefined;
  const slope = covariance / varianceX;
  return { slope, intercept: meanY - slope * meanX };
}
