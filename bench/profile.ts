/**
 * `npm run profile`: clinic doctor (or, with `--flame`, clinic flame) over `semantic serve` of the
 * tiny model while bench/profile-load.ts drives it; the report goes to a temp dir outside the repo,
 * whose HTML file's path is printed last. docs/operations.md ("Profiling") says how to read it.
 *
 *   npm run profile
 *   npm run profile -- --flame --seconds 20 --concurrency 8
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ensureModel } from '../shared/gguf/make-model.js';
import { projectRoot } from '../shared/paths.js';

const { values } = parseArgs({
  options: {
    flame: { type: 'boolean', default: false },
    seconds: { type: 'string', default: '10' },
    concurrency: { type: 'string', default: '4' },
    tokens: { type: 'string', default: '32' },
    threads: { type: 'string', default: '0' },
    dest: { type: 'string' },
  },
});
const tool = values.flame ? 'flame' : 'doctor';
const dest = values.dest ?? mkdtempSync(join(tmpdir(), `semantic-profile-${tool}-`));
const root = projectRoot();
const model = await ensureModel('tiny');
const load = [
  process.execPath,
  join(root, 'dist', 'bench', 'profile-load.js'),
  '--port',
  '$PORT',
  '--concurrency',
  values.concurrency,
  '--seconds',
  values.seconds,
  '--tokens',
  values.tokens,
];
const server = [
  process.execPath,
  join(root, 'dist', 'bench', 'profile-entry.js'),
  'serve',
  '--port',
  '0',
  '--model',
  model,
  '--model-id',
  'tiny',
  '--threads',
  values.threads ?? '0',
];
const serverFlags = ['--cache-dir', join(dest, 'agents'), '--max-sequences', String(Math.max(4, Number(values.concurrency)))];
// clinic runs the --on-port command once the server listens, then stops the server (SIGINT: a drain) and writes the report.
const args = [tool, '--open=false', '--dest', dest, '--on-port', load.join(' '), '--', ...server, ...serverFlags];
console.log(`clinic ${tool}: ${values.seconds} s of ${values.concurrency} streaming clients against semantic serve (tiny model)`);
// NO_INSIGHT: clinic otherwise asks for permission to send usage data, and without a terminal to ask on it exits at once, silently.
const env = { ...process.env, NO_INSIGHT: '1', NO_UPDATE_NOTIFIER: '1' };
const child = spawn(join(root, 'node_modules', '.bin', 'clinic'), args, { stdio: 'inherit', env });
const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
const reports = readdirSync(dest).filter((name) => name.endsWith('.html'));
if (code !== 0 || reports.length === 0) {
  console.error(`clinic ${tool} exited with ${code} and wrote no report in ${dest}`);
  process.exit(1);
}
for (const report of reports) console.log(`report: ${join(dest, report)}`);
