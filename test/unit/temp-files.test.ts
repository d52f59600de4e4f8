// Temp files of atomic writes: which ones a startup sweep removes (a dead writer's on this host, or any
// silent for an hour) and which it leaves (a live writer's, another host's, anything not ours), on
// real files in a real dir, with a live child process owning one of them.
import t from 'tap';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdirSync, mkdtempSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isPidAlive, isStaleTemp, STALE_AFTER_MS, sweepTempFiles, tempPathFor, writerHost, type SweepContext } from '../../worker/persistence/temp-files.js';

const now = 1_800_000_000_000;
const here: SweepContext = { now, host: 'aaaaaaaaaaaa', pid: 100, isAlive: (pid) => pid === 200 };
const named = (host: string, pid: number): string => `agent.safetensors.${host}.${pid}.0123456789ab.tmp`;
const fresh = (name: string): { name: string; mtimeMs: number } => ({ name, mtimeMs: now - 1000 });
const old = (name: string): { name: string; mtimeMs: number } => ({ name, mtimeMs: now - STALE_AFTER_MS });

t.test('the rule: a dead or replaced writer of this host, or an hour of silence', async (t) => {
  t.equal(isStaleTemp(fresh(named('aaaaaaaaaaaa', 300)), here), true, 'this host, pid not alive');
  t.equal(isStaleTemp(fresh(named('aaaaaaaaaaaa', 200)), here), false, 'this host, pid alive: a writer, kept');
  t.equal(isStaleTemp(fresh(named('aaaaaaaaaaaa', 100)), here), true, 'our own pid before we wrote: a predecessor that had it');
  t.equal(isStaleTemp(fresh(named('bbbbbbbbbbbb', 300)), here), false, 'another host (or boot, or pid namespace): its pids mean nothing here');
  t.equal(isStaleTemp(old(named('bbbbbbbbbbbb', 300)), here), true, 'another host, silent for an hour');
  t.equal(isStaleTemp(old(named('aaaaaaaaaaaa', 200)), here), true, 'a live pid silent for an hour is not writing it');
  t.equal(isStaleTemp({ name: named('bbbbbbbbbbbb', 300), mtimeMs: now - STALE_AFTER_MS + 1 }, here), false, 'a millisecond short of the hour');
  t.equal(isStaleTemp(fresh('agent.safetensors.300.1700000000000.tmp'), here), false, 'the old naming (pid, ms): no host, so age alone');
  t.equal(isStaleTemp(old('agent.safetensors.300.1700000000000.tmp'), here), true);
  for (const name of ['agent.safetensors', 'notes.tmp', 'model.gguf.300.0123456789ab.tmp', 'agent.safetensors.tmp', `agent.safetensors.aaaaaaaaaaaa.300.0123456789ab.tmp.bak`]) {
    t.equal(isStaleTemp(old(name), here), false, `not a cache temp file: ${name}`);
  }
});

t.test('a temp path names this process and is new each time', async (t) => {
  const first = tempPathFor('/cache/a.safetensors');
  t.match(first, new RegExp(`^/cache/a\\.safetensors\\.${writerHost}\\.${process.pid}\\.[0-9a-f]{12}\\.tmp$`));
  t.not(tempPathFor('/cache/a.safetensors'), first);
  t.equal(
    isStaleTemp(fresh(first.slice('/cache/'.length)), { now, host: writerHost, pid: process.pid + 1, isAlive: isPidAlive }),
    false,
    "this live process's own temp file, seen by a sibling",
  );
});

t.test("a sweep of real files: dead writers' go, a live writer's and foreign ones stay, links are not followed", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'semantic-temp-sweep-'));
  const outside = mkdtempSync(join(tmpdir(), 'semantic-temp-outside-'));
  const dead = spawn(process.execPath, ['-e', '']);
  await once(dead, 'exit');
  const live = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
  t.teardown(() => live.kill());
  await once(live, 'spawn');
  const deadPid = dead.pid!;
  const livePid = live.pid!;
  t.equal(isPidAlive(deadPid), false);
  t.equal(isPidAlive(livePid), true);
  mkdirSync(join(dir, 'segments'));
  mkdirSync(join(dir, 'models', 'f00d', 'segments'), { recursive: true });
  const files: Record<string, number> = {
    [`a.safetensors.${writerHost}.${deadPid}.000000000001.tmp`]: 1000,
    [`segments/s.safetensors.${writerHost}.${deadPid}.000000000002.tmp`]: 200,
    [`models/f00d/segments/s.safetensors.${writerHost}.${deadPid}.000000000003.tmp`]: 30,
    [`b.safetensors.${deadPid}.1700000000000.tmp`]: 4, // old naming, made an hour old below
    [`live.safetensors.${writerHost}.${livePid}.000000000004.tmp`]: 50,
    [`far.safetensors.0123456789ab.${deadPid}.000000000005.tmp`]: 60,
    [`fresh-old-naming.safetensors.${deadPid}.1700000000000.tmp`]: 70,
    'agent.safetensors': 80,
    'notes.tmp': 90,
  };
  for (const [name, bytes] of Object.entries(files)) writeFileSync(join(dir, name), Buffer.alloc(bytes));
  const anHourAgo = (Date.now() - STALE_AFTER_MS - 60_000) / 1000;
  utimesSync(join(dir, `b.safetensors.${deadPid}.1700000000000.tmp`), anHourAgo, anHourAgo);
  writeFileSync(join(outside, `x.safetensors.${writerHost}.${deadPid}.000000000006.tmp`), 'x');
  symlinkSync(outside, join(dir, 'linked'));

  t.same(await sweepTempFiles(dir), { files: 4, bytes: 1234, kept: 3 });
  const left = Object.keys(files).filter((name) => existsSync(join(dir, name)));
  t.same(left, [
    `live.safetensors.${writerHost}.${livePid}.000000000004.tmp`,
    `far.safetensors.0123456789ab.${deadPid}.000000000005.tmp`,
    `fresh-old-naming.safetensors.${deadPid}.1700000000000.tmp`,
    'agent.safetensors',
    'notes.tmp',
  ]);
  t.ok(existsSync(join(outside, `x.safetensors.${writerHost}.${deadPid}.000000000006.tmp`)), 'nothing behind a symbolic link');
  t.same(await sweepTempFiles(dir), { files: 0, bytes: 0, kept: 3 }, 'a second sweep finds nothing more');
  t.same(await sweepTempFiles(join(dir, 'missing')), { files: 0, bytes: 0, kept: 0 }, 'a cache dir not made yet');
});
