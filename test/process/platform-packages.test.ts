// The library packages the install step may link exist in the registry at the version package.json
// pins, and their os/cpu/libc fields admit the platform our choice table gives them. The pin once
// named a version the registry had for Linux only: npm then skips the missing optional dependency
// without a word, and only a Mac or Windows user would have found out.
import t from 'tap';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { defaultPackages, gpuPackages, SCOPE, type LibraryPackage } from '../../addon/llama-platform.mjs';
import { projectRoot } from '../../shared/paths.js';

const run = promisify(execFile);
const manifest = JSON.parse(readFileSync(join(projectRoot(), 'package.json'), 'utf8')) as { optionalDependencies: Record<string, string> };

interface Published {
  version?: string;
  os?: string[];
  cpu?: string[];
  libc?: string[];
}

/** `npm view` of one version: E404 (exit 1, the error as JSON on stdout) when that version was never published. */
async function published(name: string, version: string): Promise<Published> {
  const args = ['view', `${name}@${version}`, 'version', 'os', 'cpu', 'libc', '--json'];
  const stdout = await run('npm', args, { timeout: 60_000 }).then(
    (done) => done.stdout,
    (error: { stdout?: string }) => error.stdout ?? '',
  );
  const answer = JSON.parse(stdout) as Published & { error?: { code: string } };
  if (answer.error !== undefined && answer.error.code !== 'E404') throw new Error(`npm view ${name}@${version}: ${stdout}`);
  return answer;
}

const version = manifest.optionalDependencies[`${SCOPE}linux-x64`]!;

t.test('every default platform package is an optional dependency at one version', async (t) => {
  t.same(Object.keys(manifest.optionalDependencies).sort(), defaultPackages.map(({ suffix }) => SCOPE + suffix).sort());
  t.same(new Set(Object.values(manifest.optionalDependencies)), new Set([version]));
});

const admits = (meta: Published, entry: LibraryPackage) =>
  meta.os?.includes(entry.platform) === true && meta.cpu?.includes(entry.arch) === true && (entry.libc === undefined || meta.libc?.includes(entry.libc) === true);

for (const entry of [...defaultPackages, ...gpuPackages]) {
  const name = SCOPE + entry.suffix;
  t.test(`${name}@${version} is published for ${entry.platform}-${entry.arch}${entry.libc === undefined ? '' : ` (${entry.libc})`}`, async (t) => {
    const meta = await published(name, version);
    t.equal(meta.version, version, 'published at the pinned version');
    t.ok(admits(meta, entry), `os ${String(meta.os)}, cpu ${String(meta.cpu)}, libc ${String(meta.libc)}`);
  });
}
