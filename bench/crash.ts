/**
 * The long crash test (crash-driver.ts): SIGKILLs at random points of write-behind and of a model
 * swap, a restart after each, every agent's next turn checked against a cold run. Prints the seed
 * first (a failure replays with `--seed`), one line per kill, then a summary; exits 1 on any wrong
 * or failed turn, failed start or temp file left. docs/reliability.md has recorded runs.
 *
 *   npm run crash -- [--kills 200] [--seed N] [--agents 4]
 */
import { parseArgs } from 'node:util';
import { runCrashTest } from './crash-driver.js';

const { values } = parseArgs({
  options: {
    kills: { type: 'string', default: '200' },
    seed: { type: 'string' },
    agents: { type: 'string', default: '4' },
  },
});
const seed = values.seed === undefined ? Date.now() % 2 ** 31 : Number(values.seed);
console.log(`crash test: seed ${seed}, ${values.kills} kills`);
const summary = await runCrashTest({ kills: Number(values.kills), seed, agents: Number(values.agents), log: (line) => console.log(line) });
const { kills, turns } = summary;
console.log(`\nseed ${seed}: ${kills.writeBehind + kills.swap} kills (${kills.writeBehind} during write-behind, ${kills.swap} during a swap) in ${summary.seconds} s`);
console.log(`turns checked: ${turns.hits} hits, ${turns.misses} clean misses, ${turns.wrong} wrong, ${turns.failed} failed`);
console.log(`failed starts: ${summary.failedStarts}; temp files left after startup: ${summary.tempFiles}`);
for (const problem of summary.problems) console.log(`  ${problem}`);
process.exitCode = summary.problems.length === 0 ? 0 : 1;
