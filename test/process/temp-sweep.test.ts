// A real server starting on a cache dir with temp files that crashed writers left (finding 7 of issue
// 13): it removes them, says how many and how many bytes, and leaves alone the temp file that another
// live process is still writing, whose rename then lands.
import t from 'tap';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { pathToFileURL } from 'node:url';
import { projectRoot } from '../../shared/paths.js';
import { tinyModelPath } from '../helpers/model.js';
import { startServer } from '../helpers/server.js';

const modelPath = await tinyModelPath();
const cacheDir = mkdtempSync(join(tmpdir(), 'semantic-temp-sweep-'));
const tempFiles = pathToFileURL(join(projectRoot(), 'dist', 'worker', 'persistence', 'temp-files.js')).href;
const { writerHost } = (await import(tempFiles)) as typeof import('../../worker/persistence/temp-files.js');

/** A writer in another process: opens its temp file, writes half, and finishes (rename) when told on stdin. */
const writerScript = `
import { open, rename } from 'node:fs/promises';
import { tempPathFor } from ${JSON.stringify(tempFiles)};
const final = process.argv[1];
const temp = tempPathFor(final);
const file = await open(temp, 'w');
await file.write(Buffer.alloc(4096, 1));
console.log(temp);
process.stdin.once('data', async () => {
  await file.write(Buffer.alloc(4096, 2));
  await file.close();
  await rename(temp, final);
  process.exit(0);
});`;

t.test("crashed writers' temp files are swept and counted; a live writer's survives and lands", async (t) => {
  const dead = spawn(process.execPath, ['-e', '']);
  await once(dead, 'exit');
  const crashed = (name: string): string => `${name}.safetensors.${writerHost}.${dead.pid}.00000000000${name.length}.tmp`;
  mkdirSync(join(cacheDir, 'segments'));
  writeFileSync(join(cacheDir, crashed('a')), Buffer.alloc(1_000_000));
  writeFileSync(join(cacheDir, 'segments', crashed('seg')), Buffer.alloc(700_000));

  const writer = spawn(process.execPath, ['--input-type=module', '-e', writerScript, join(cacheDir, 'busy.safetensors')], { stdio: ['pipe', 'pipe', 'inherit'] });
  t.teardown(() => writer.kill());
  const [writing] = (await once(createInterface({ input: writer.stdout }), 'line')) as [string];

  const server = await startServer(['serve', '--port', '0', '--model', modelPath, '--model-id', 'tiny', '--threads', '1', '--context-size', '512', '--cache-dir', cacheDir]);
  t.teardown(() => server.stop());
  const sweeps = server.logs.filter((line) => line.msg === 'stale temp files swept');
  t.equal(sweeps.length, 1, 'one sweep at startup');
  t.match(sweeps[0], { cacheDir, files: 2, bytes: 1_700_000, kept: 1 });
  t.equal(existsSync(join(cacheDir, crashed('a'))), false);
  t.equal(existsSync(join(cacheDir, 'segments', crashed('seg'))), false);
  t.equal(existsSync(writing), true, "the live writer's temp file is still there");

  writer.stdin.write('finish\n');
  const [code] = (await once(writer, 'exit')) as [number | null];
  t.equal(code, 0, 'its rename succeeded');
  const landed = readFileSync(join(cacheDir, 'busy.safetensors'));
  t.equal(landed.length, 8192);
  t.equal(landed[0], 1);
  t.equal(landed[8191], 2);
});
