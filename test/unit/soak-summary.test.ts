// The soak's RSS growth (bench/soak-sampler.ts): medians of a window after warm-up and of the life's
// last window, so a garbage collector's sawtooth reads as flat and a steady climb reads as growth.
import t from 'tap';
import { summarise, type Sample } from '../../bench/soak-sampler.js';
import { fleetRssTrend } from '../../bench/soak-trend.js';

const MiB = 1 << 20;

/** One worker (pid 7) sampled every 5 s for `seconds`, its RSS in MiB given by `rssAt`. */
function life(seconds: number, rssAt: (at: number) => number): Sample[] {
  const samples: Sample[] = [];
  for (let at = 0; at <= seconds; at += 5) {
    samples.push({ atSeconds: at, supervisor: undefined, workers: [{ pid: 7, rssBytes: Math.round(rssAt(at) * MiB), fds: 30 }], cacheBytes: 0, cacheFiles: 0 });
  }
  return samples;
}

t.test('a sawtooth with no trend is no growth, though its last sample sits at a peak', async (t) => {
  // 300 MiB, +30 MiB at every third sample: the last sample (300 s) is a peak, the warm one (60 s) too.
  const [worker] = summarise(
    life(300, (at) => (at % 15 === 0 ? 330 : 300)),
    60,
  );
  t.equal(worker!.warmRssMedianBytes, 300 * MiB);
  t.equal(worker!.endRssMedianBytes, 300 * MiB);
  t.equal(worker!.rssGrowthPercent, 0);
});

t.test('a steady climb after warm-up is measured between the windows’ medians', async (t) => {
  // 1 MiB a minute from 300 MiB: the warm window (samples 60–115 s) has its median at 87.5 s, the end
  // window (the last 60 s: samples 240–300 s) at 270 s, so they are 182.5 s (3.04 MiB) apart.
  const [worker] = summarise(
    life(300, (at) => 300 + at / 60),
    60,
  );
  t.ok(Math.abs(worker!.warmRssMedianBytes! - (300 + 87.5 / 60) * MiB) <= 1);
  t.ok(Math.abs(worker!.endRssMedianBytes! - (300 + 270 / 60) * MiB) <= 1);
  t.ok(Math.abs(worker!.rssGrowthPercent! - (182.5 / 60 / (300 + 87.5 / 60)) * 100) < 1e-3);
});

t.test('a life too short for a sample after its warm window has no growth figure', async (t) => {
  const [worker] = summarise(
    life(110, () => 300),
    60,
  );
  t.equal(worker!.rssGrowthPercent, undefined);
  t.equal(worker!.lastSeconds, 110);
});

/** Two workers sampled every 5 s; each generation lives `period` s and climbs from `base` (+ `leak` per second of the run). */
function fleet(seconds: number, period: number, base: number, leakMiBPerSecond: number): Sample[] {
  const samples: Sample[] = [];
  for (let at = 0; at <= seconds; at += 5) {
    const generation = Math.floor(at / period);
    const age = at % period;
    const rss = base + Math.min(age, 120) * 0.25 + leakMiBPerSecond * at;
    const workers = [0, 1].map((i) => ({ pid: 100 + 2 * generation + i, rssBytes: Math.round(rss * MiB), fds: 30 }));
    // A handover: the new generation's first process is up beside the old pair for one sample.
    if (age === 0 && generation > 0) workers.push({ pid: 99, rssBytes: 20 * MiB, fds: 5 });
    samples.push({ atSeconds: at, supervisor: undefined, workers, cacheBytes: 0, cacheFiles: 0 });
  }
  return samples;
}

t.test("the fleet's trend: each life's climb and the restarts are no growth, a leak across lives is", async (t) => {
  const flat = fleetRssTrend(fleet(3600, 300, 250, 0), 2, 300);
  // Every life climbs 30 MiB in its first 2 minutes (12 % of a life by the per-life measure), yet the
  // fleet needs no more memory at the end of the hour than after its warm-up.
  // (Under 1 %: the line's ends fall at different points of the restart cycle.)
  t.ok(flat !== undefined && Math.abs(flat.growthPercent) < 1, `flat fleet: ${flat?.growthPercent}`);
  // The 12 handover samples (300, 600, … 3600 s: three processes up) are left out of the fit.
  t.equal(flat!.fromSeconds, 305);
  t.equal(flat!.toSeconds, 3595);
  t.equal(flat!.samples, (3600 - 300) / 5 + 1 - 12);

  // 20 MiB an hour per worker, across restarts: about 7 % of 2 × 280 MiB over 55 minutes.
  const leaking = fleetRssTrend(fleet(3600, 300, 250, 20 / 3600), 2, 300);
  t.ok(leaking!.growthPercent > 5 && leaking!.growthPercent < 8, `leaking fleet: ${leaking!.growthPercent}`);
  t.equal(fleetRssTrend(fleet(200, 300, 250, 0), 2, 300), undefined, 'no sample after the warm-up: no trend');
});
