// The restart policy with exact delays: backoff doubles per exit of a series up to the cap, a stable run
// starts a new series, and 5 exits within 60 s or 5 failed starts in a row is a crash loop.
import t from 'tap';
import { ConfigError } from '../../shared/config.js';
import { decideRestart, defaultRestartPolicy, restartBaseDelayEnv, restartPolicyFromEnv, type SlotExit } from '../../supervisor/restart-policy.js';

const s = 1000;

/** Exits `gapS` seconds apart, each of a worker that had been ready for `readyS` seconds (null: never). */
function exits(count: number, gapS: number, readyS: number | null, startS = 0): SlotExit[] {
  return Array.from({ length: count }, (_, i) => {
    const at = (startS + i * gapS) * s;
    return { at, readyAt: readyS === null ? undefined : at - readyS * s };
  });
}

/** The decision after each exit of `history` in turn. */
function delaysAlong(history: SlotExit[]): (number | null)[] {
  return history.map((_, i) => {
    const decision = decideRestart(history.slice(0, i + 1));
    return decision.restart ? decision.delayMs : null;
  });
}

t.test('the delay doubles with each exit of a series, from 1 s up to 30 s', async (t) => {
  // 20 s apart, each ready for 10 s: never 5 exits within 60 s, never stable.
  t.same(delaysAlong(exits(8, 20, 10)), [1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
  t.same(decideRestart(exits(3, 20, 10)), { restart: true, delayMs: 4000, exits: 3 });
});

t.test('a run that stayed ready for a minute starts a new series with its own exit', async (t) => {
  const quick = exits(3, 20, 10);
  const stableExit = { at: 200 * s, readyAt: 140 * s };
  t.same(decideRestart([...quick, stableExit]), { restart: true, delayMs: 1000, exits: 1 });
  const almostStable = { at: 200 * s, readyAt: 140 * s + 1 };
  t.same(decideRestart([...quick, almostStable]), { restart: true, delayMs: 8000, exits: 4 }, '1 ms short of a minute counts on');
  const afterStable = [...quick, stableExit, ...exits(2, 20, 10, 220)];
  t.same(decideRestart(afterStable), { restart: true, delayMs: 4000, exits: 3 }, 'the exits before the stable run are forgotten');
});

t.test('5 exits within 60 s is a crash loop, even of workers that became ready', async (t) => {
  t.same(delaysAlong(exits(5, 15, 5)), [1000, 2000, 4000, 8000, null], 'the 5th exit, 60 s after the 1st');
  t.same(decideRestart(exits(5, 15, 5)), { restart: false, reason: '5 exits within 60 s', exits: 5 });
  const spread = exits(5, 15, 5);
  spread[4]!.at += 1;
  t.same(decideRestart(spread), { restart: true, delayMs: 16000, exits: 5 }, '60.001 s apart is not');
});

t.test('5 failed starts in a row is a crash loop, however slowly they fail', async (t) => {
  const slowFailures = exits(5, 300, null);
  t.same(delaysAlong(slowFailures), [1000, 2000, 4000, 8000, null]);
  t.same(decideRestart(slowFailures), { restart: false, reason: '5 failed starts in a row (never ready)', exits: 5 });
  const oneReady = [...exits(4, 300, null), ...exits(1, 300, 10, 1200)];
  t.same(decideRestart(oneReady), { restart: true, delayMs: 16000, exits: 5 }, 'a start that became ready breaks the row');
});

t.test('the base delay comes from the environment, checked', async (t) => {
  t.equal(restartPolicyFromEnv({}), defaultRestartPolicy);
  t.equal(restartPolicyFromEnv({ [restartBaseDelayEnv]: '' }), defaultRestartPolicy);
  const fast = restartPolicyFromEnv({ [restartBaseDelayEnv]: '20' });
  t.same(fast, { ...defaultRestartPolicy, baseDelayMs: 20 });
  const failures = exits(5, 1, null);
  const fastDelays = failures.map((_, i) => decideRestart(failures.slice(0, i + 1), fast));
  t.same(
    fastDelays.slice(0, 4),
    [20, 40, 80, 160].map((delayMs, i) => ({ restart: true, delayMs, exits: i + 1 })),
  );
  t.match(fastDelays[4], { restart: false, exits: 5 });
  for (const bad of ['0', '-5', '1.5', 'fast']) {
    t.throws(
      () => restartPolicyFromEnv({ [restartBaseDelayEnv]: bad }),
      new ConfigError([`env ${restartBaseDelayEnv} must be a whole number of milliseconds ≥ 1, not "${bad}"`]),
      bad,
    );
  }
});
