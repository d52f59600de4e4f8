// Property-based fuzzing of both API families over real HTTP (test/helpers/fuzz/): 1,000 requests
// whose bodies are derived from the routes' own zod schemas and then mutated, with hostile headers.
// Every answer must be below 500, every error in its API's own shape, every 200 whole, and no agent id
// outside the id alphabet accepted; afterwards the server must still serve, within an RSS bound.
// The seed is random (set FUZZ_SEED to replay one); a failure prints the seed and the shrunk request.
// `npm run fuzz -- --runs 20000` runs the same property longer.
import t from 'tap';
import fc from 'fast-check';
import { Agent } from 'node:http';
import { tinyModelPath } from '../helpers/model.js';
import { startServer } from '../helpers/server.js';
import { residentBytes } from '../helpers/fuzz/check.js';
import { endpoints } from '../helpers/fuzz/requests.js';
import { emptyTally, formatTally, fuzzProperty, fuzzServerArgs, healthAfter, rssGrowthBound } from '../helpers/fuzz/run.js';

const runs = 1000;
const seed = process.env.FUZZ_SEED === undefined ? Date.now() ^ (Math.random() * 0x1_0000_0000) : Number(process.env.FUZZ_SEED);

const server = await startServer(fuzzServerArgs(await tinyModelPath()));
const agent = new Agent({ keepAlive: true, maxSockets: 1 });
t.teardown(async () => {
  agent.destroy();
  await server.stop();
});

t.test(`${runs} hostile requests keep every invariant (seed ${seed})`, async (t) => {
  const health = await healthAfter(server.url, agent); // also warms the model up before the RSS baseline
  t.same(health, { live: 200, chat: 200 }, 'serving before');
  const rssBefore = await residentBytes(server.url);
  const tally = emptyTally();
  await fc.assert(fuzzProperty(server.url, agent, tally), { numRuns: runs, seed });
  t.comment(formatTally(tally));
  t.equal(tally.cases, runs, 'every case ran, none was shrunk');
  t.same(tally.violations, new Map());

  t.same(await healthAfter(server.url, agent), { live: 200, chat: 200 }, '/health/live and a plain chat request still answered 200');
  const growth = (await residentBytes(server.url)) - rssBefore;
  t.ok(growth <= rssGrowthBound, `RSS grew ${(growth / 2 ** 20).toFixed(0)} MiB, within ${rssGrowthBound / 2 ** 20} MiB`);

  // The generator reaches what it is for: every route, every mutation, valid bodies and each refusal.
  t.same([...tally.byRoute.keys()].sort(), endpoints.map((endpoint) => endpoint.path).sort(), 'every route was fuzzed');
  const mutations = [
    'valid-ish',
    'wrong-type',
    'drop-field',
    'extra-field',
    'huge-string',
    'odd-unicode',
    'deep-nesting',
    'raw-number',
    'truncate',
    'insert-bytes',
    'replace-body',
  ];
  t.same(
    mutations.filter((kind) => (tally.byMutation.get(kind) ?? 0) === 0),
    [],
    'every kind of mutation was made',
  );
  t.same(
    ['200', '400', '404', '413'].filter((status) => (tally.byStatus.get(status) ?? 0) === 0),
    [],
    'answers include 200, 400, 404 and 413',
  );
});
