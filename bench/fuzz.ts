/**
 * Property-based fuzzing of both API families over real HTTP, longer than CI's 1,000 cases: starts
 * `semantic serve` on the tiny generated model, sends `--runs` hostile requests (test/helpers/fuzz/),
 * then checks the server still answers /health/live and a plain chat request and that its resident
 * memory grew less than the bound (test/helpers/fuzz/run.ts says why that bound), printing RSS every
 * twentieth of the run: a leak climbs to the end, a high-water mark levels off. A failing case is shrunk by fast-check to a minimal request and printed with
 * the seed that replays it.
 *
 *   npm run fuzz -- [--runs 20000] [--seed 42] [--tolerate agent-id-accepted]
 */
import fc from 'fast-check';
import { Agent } from 'node:http';
import { parseArgs } from 'node:util';
import { ensureModel } from '../shared/gguf/make-model.js';
import { startServer } from '../test/helpers/server.js';
import { describeRequest, residentBytes, type ViolationKind } from '../test/helpers/fuzz/check.js';
import { emptyTally, formatTally, fuzzProperty, fuzzServerArgs, healthAfter, rssGrowthBound } from '../test/helpers/fuzz/run.js';

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '20000' },
    seed: { type: 'string' },
    tolerate: { type: 'string', default: '' },
  },
});

const MiB = 1024 * 1024;
const runs = Number(values.runs);
if (!Number.isInteger(runs) || runs < 1) throw new Error(`--runs must be a positive integer; got ${values.runs}`);
const seed = values.seed === undefined ? Date.now() ^ (Math.random() * 0x1_0000_0000) : Number(values.seed);
const tolerated = new Set(values.tolerate.split(',').filter((kind) => kind !== '') as ViolationKind[]);

const server = await startServer(fuzzServerArgs(await ensureModel('tiny')));
const agent = new Agent({ keepAlive: true, maxSockets: 1 });
try {
  const tally = emptyTally();
  const rssBefore = await residentBytes(server.url);
  const started = performance.now();
  const details = await fc.check(fuzzProperty(server.url, agent, tally, tolerated, Math.max(1, Math.floor(runs / 20))), { numRuns: runs, seed, endOnFailure: false });
  const seconds = (performance.now() - started) / 1000;
  const health = await healthAfter(server.url, agent);
  const rssAfter = await residentBytes(server.url);
  console.log(formatTally(tally));
  console.log(`seed: ${seed}; ${details.numRuns} runs in ${seconds.toFixed(1)} s (${(tally.cases / seconds).toFixed(0)} requests/s, shrinking included)`);
  const rssOk = rssAfter - rssBefore <= rssGrowthBound;
  console.log(
    `after: /health/live ${health.live}, plain chat ${health.chat}; RSS ${(rssBefore / MiB).toFixed(0)} → ${(rssAfter / MiB).toFixed(0)} MiB (growth bound ${rssGrowthBound / MiB} MiB: ${rssOk ? 'kept' : 'BROKEN'})`,
  );
  if (details.failed)
    console.log(
      `FAILED after ${details.numRuns} runs; replay with --seed ${seed}\nshrunk counterexample: ${details.counterexample === null ? 'none' : describeRequest(details.counterexample[0])}\n${String(details.errorInstance)}`,
    );
  process.exitCode = details.failed || health.live !== 200 || health.chat !== 200 || !rssOk ? 1 : 0;
} finally {
  agent.destroy();
  await server.stop();
}
