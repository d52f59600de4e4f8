// The crash test in CI (bench/crash-driver.ts): 20 SIGKILLs of a real server at random moments of
// write-behind and of an admin model swap between two tiny models, a restart on the same cache dir
// after each, and every agent's next turn checked: a cache hit with the cold run's greedy output, or
// a clean miss with it; no failed start; no temp file left once the restarted server is ready.
// The seed is printed; SEMANTIC_CRASH_SEED=<seed> replays a failure's plan. The long version:
// `npm run crash -- --kills 200`.
import t from 'tap';
import { runCrashTest } from '../../bench/crash-driver.js';

const KILLS = 20;
const AGENTS = 4;
const seed = process.env.SEMANTIC_CRASH_SEED !== undefined ? Number(process.env.SEMANTIC_CRASH_SEED) : Date.now() % 2 ** 31;
t.comment(`crash test seed ${seed} (replay: SEMANTIC_CRASH_SEED=${seed})`);

const summary = await runCrashTest({ kills: KILLS, seed, agents: AGENTS });
const { kills, turns } = summary;
t.comment(`seed ${seed}: ${turns.hits} hits, ${turns.misses} misses in ${summary.seconds} s`);

t.same(summary.problems, [], `seed ${seed}: no wrong or failed turn, failed start or temp file`);
t.equal(kills.writeBehind + kills.swap, KILLS, 'every planned kill happened');
t.ok(kills.writeBehind >= KILLS / 2 && kills.swap >= KILLS / 2 - 1, 'kills during write-behind and during swaps');
t.equal(summary.failedStarts, 0, 'every restart got ready');
t.equal(turns.wrong, 0, 'no turn answered other than its cold run');
t.equal(turns.failed, 0, 'no turn failed');
// A kill mid-write leaves a temp file; the restart's sweep (worker/persistence/temp-files.ts) removes it before ready.
t.equal(summary.tempFiles, 0, 'no temp file found after a restart');
// Each restart checks every agent: only the first start (no files yet) must miss; most later turns
// are disk hits, since the previous cycle's turns were written behind unless the kill came first.
t.ok(turns.hits + turns.misses >= KILLS * AGENTS, "every agent's turn after every restart was checked");
t.ok(turns.hits >= (KILLS * AGENTS) / 2, `most checked turns were cache hits (${turns.hits})`);
