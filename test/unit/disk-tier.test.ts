// The disk tier against a real cache dir: the startup index learns each file's size and age, the
// budget deletes the least recently used files from disk, and a restarted tier sees what is left.
//
// DiskTier runs its file I/O in a piscina thread loaded from the compiled cache-task.js next to it,
// so this test imports it from dist/ (npm test builds first; run `npm run build` before running it
// alone), typed as the source module.
import t, { type Test } from 'tap';
import { existsSync, readFileSync, readdirSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { projectRoot } from '../../shared/paths.js';

type DiskTierModule = typeof import('../../worker/persistence/disk-tier.js');
type DiskTier = InstanceType<DiskTierModule['DiskTier']>;
const built = join(projectRoot(), 'dist', 'worker', 'persistence', 'disk-tier.js');
const { DiskTier } = (await import(pathToFileURL(built).href)) as DiskTierModule;

const STATE = 1000;
const tokens = (...ids: number[]): Int32Array => Int32Array.from(ids);
const state = (fill: number, bytes = STATE): Uint8Array => new Uint8Array(bytes).fill(fill);

function open(t: Test, dir: string, budget: number): DiskTier {
  const tier = new DiskTier(dir, 'model-x', 'f16', false, budget);
  t.teardown(() => tier.close());
  return tier;
}

/** What a returning agent gets: its tokens (inspect) and the state bytes its file holds where the header says. */
async function load(tier: DiskTier, agentId: string): Promise<{ tokens: Int32Array; state: Uint8Array } | null> {
  const found = await tier.inspect(agentId);
  if (found === null) return null;
  const { path, stateOffset, stateBytes } = found.file;
  return { tokens: found.tokens, state: readFileSync(path).subarray(stateOffset, stateOffset + stateBytes) };
}

const files = (dir: string): string[] => readdirSync(dir).sort();
const fileBytes = (dir: string): number => readdirSync(dir).reduce((sum, name) => sum + statSync(join(dir, name)).size, 0);

/** The size of one agent's file for a STATE-byte state and 2 tokens; ids of one character all give the same. */
const size = await (async () => {
  const probe = new DiskTier(t.testdir(), 'model-x', 'f16', false, 1 << 30);
  const bytes = await probe.persist('p', tokens(1, 2), state(0));
  await probe.close();
  return bytes;
})();

t.test('persist and load count bytes and recency; the least recently used file is deleted', async (t) => {
  const dir = t.testdir();
  const tier = open(t, dir, 2 * size + size / 2);
  t.equal(await tier.index(), 0);
  t.equal(await tier.persist('a', tokens(1, 2), state(1)), size);
  t.equal(await tier.persist('b', tokens(1, 2), state(2)), size);
  t.equal(tier.bytes, 2 * size);
  t.equal((await load(tier, 'a'))?.state[0], 1, 'a is read back and is now the most recent');
  t.equal(await tier.persist('c', tokens(1, 2), state(3)), size);
  t.equal(await load(tier, 'b'), null, 'b, the least recently used, was evicted (the load runs after its delete)');
  t.same(files(dir), ['a.safetensors', 'c.safetensors'], 'and its file deleted');
  t.same(
    tier.entries().map((entry) => entry.agentId),
    ['a', 'c'],
  );
  t.equal(tier.bytes, fileBytes(dir));
  t.equal(tier.size, 2);
  t.notOk(tier.has('b'));
});

t.test('a restarted tier indexes sizes and mtimes, and trims to a smaller budget', async (t) => {
  const dir = t.testdir();
  const first = open(t, dir, 10 * size);
  await first.index();
  for (const [i, agent] of ['c', 'a', 'b'].entries()) await first.persist(agent, tokens(1, 2), state(i));
  await first.close();
  // Written c, a, b; the mtimes say a, b, c: the index goes by mtime, which survives the restart.
  utimesSync(join(dir, 'c.safetensors'), 3000, 3000);
  utimesSync(join(dir, 'a.safetensors'), 1000, 1000);
  utimesSync(join(dir, 'b.safetensors'), 2000, 2000);

  const same = open(t, dir, 10 * size);
  t.equal(await same.index(), 3);
  t.equal(same.bytes, 3 * size);
  await same.tokensLearned;
  t.same(
    same.entries(),
    [
      { agentId: 'a', bytes: size, lastUsed: 1_000_000, tokens: 2 },
      { agentId: 'b', bytes: size, lastUsed: 2_000_000, tokens: 2 },
      { agentId: 'c', bytes: size, lastUsed: 3_000_000, tokens: 2 },
    ],
    'oldest first, by mtime; token counts read from the headers in the background',
  );
  await same.close();

  const smaller = open(t, dir, 2 * size);
  t.equal(await smaller.index(), 2);
  t.equal(await load(smaller, 'a'), null, 'the oldest is deleted to fit the budget');
  t.same(files(dir), ['b.safetensors', 'c.safetensors']);
  t.equal((await load(smaller, 'b'))?.state[0], 2);
});

t.test("a state larger than the budget is not written and the agent's older file goes", async (t) => {
  const dir = t.testdir();
  const tier = open(t, dir, 2 * size);
  await tier.index();
  await tier.persist('a', tokens(1, 2), state(1));
  t.equal(await tier.persist('a', tokens(1, 2), state(2, 2 * size)), 0);
  t.equal(await load(tier, 'a'), null, 'never the older state');
  t.same(files(dir), []);
  t.equal(tier.bytes, 0);
  t.equal(tier.size, 0);
});

t.test('concurrent writes of one agent: the later one is on disk and counted once', async (t) => {
  const dir = t.testdir();
  const tier = open(t, dir, 10 * size);
  await tier.index();
  const writes = [tier.persist('a', tokens(1, 2), state(1)), tier.persist('a', tokens(3, 4), state(2))];
  t.ok(tier.has('a'), 'present while its first write is on the way');
  t.same(await Promise.all(writes), [size, size]);
  t.equal(tier.bytes, size);
  t.equal(tier.size, 1);
  t.same((await load(tier, 'a'))?.tokens, tokens(3, 4));
});

t.test('a file another process wrote into the shared dir after startup is found and adopted', async (t) => {
  const dir = t.testdir();
  const [mine, other] = [open(t, dir, 10 * size), open(t, dir, 10 * size)];
  await mine.index();
  await other.index();
  t.notOk(mine.mayHave('late'), 'nothing yet');
  await other.persist('late', tokens(5, 6), state(3));
  t.notOk(mine.has('late'), 'not in the index built at startup');
  t.ok(mine.mayHave('late'), 'but its file is there');
  t.same((await load(mine, 'late'))?.tokens, tokens(5, 6));
  t.equal(mine.bytes, size, "counted against this tier's budget once read");
});

t.test('budget 0: nothing is indexed, written or read', async (t) => {
  const dir = t.testdir();
  const writer = open(t, dir, 10 * size);
  await writer.index();
  await writer.persist('a', tokens(1, 2), state(1));
  await writer.close();

  const off = open(t, dir, 0);
  t.equal(await off.index(), 0);
  t.notOk(off.has('a'));
  t.notOk(off.mayHave('a'), 'an off tier looks for no file');
  t.equal(await load(off, 'a'), null);
  t.equal(await off.persist('b', tokens(1, 2), state(2)), 0);
  t.same(files(dir), ['a.safetensors'], 'files are left for a later run with a budget');
  t.notOk(existsSync(join(dir, 'b.safetensors')));
});

t.test("forget deletes the file after the agent's pending write lands; token counts are recorded", async (t) => {
  const dir = t.testdir();
  const tier = open(t, dir, 10 * size);
  await tier.index();
  const write = tier.persist('a', tokens(1, 2, 3), state(1));
  t.same(
    tier.entries().map((entry) => entry.agentId),
    [],
    'counted only once written',
  );
  await write;
  t.match(tier.entries(), [{ agentId: 'a', tokens: 3 }]);
  void tier.persist('a', tokens(1, 2, 3, 4), state(2));
  t.equal(await tier.forget('a'), true, 'forget waits for the write in flight, then deletes');
  t.same(files(dir), []);
  t.notOk(tier.has('a'));
  t.equal(tier.bytes, 0);
  t.equal(await tier.forget('a'), false, 'nothing left to forget');
});

t.test('the background header pass leaves a bad file to the read that will quarantine it', async (t) => {
  const dir = t.testdir();
  const first = open(t, dir, 10 * size);
  await first.index();
  await first.persist('good', tokens(1, 2, 3), state(1));
  await first.persist('bad', tokens(1, 2), state(2));
  await first.close();
  writeFileSync(join(dir, 'bad.safetensors'), 'not a cache file');
  const again = open(t, dir, 10 * size);
  t.equal(await again.index(), 2);
  await again.tokensLearned;
  t.same(
    again
      .entries()
      .map((entry) => [entry.agentId, entry.tokens])
      .sort(),
    [
      ['bad', undefined],
      ['good', 3],
    ],
  );
  t.ok(existsSync(join(dir, 'bad.safetensors')), 'not quarantined by the header pass');
  t.equal(await load(again, 'bad'), null, "the agent's read finds it bad");
  t.notOk(existsSync(join(dir, 'bad.safetensors')), 'and quarantines it');
});
