/**
 * For the release tooling's tests: the production tree as npm itself lists it (the reference the
 * SBOM and the license check are held to), and a runner for the compiled scripts in dist/cli/release/.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { projectRoot } from '../../shared/paths.js';

interface NpmNode {
  version?: string;
  dependencies?: Record<string, NpmNode>;
}

/** Every installed production package, `name@version`, from `npm ls --omit=dev --all --json` (optional ones not installed have no version and are skipped). */
export async function npmProductionPackages(): Promise<Set<string>> {
  // npm ls exits 1 on peer-range complaints about dev packages, yet prints the whole tree.
  const { stdout } = await promisify(execFile)('npm', ['ls', '--omit=dev', '--all', '--json'], { cwd: projectRoot(), maxBuffer: 64 << 20 }).catch((err: { stdout?: string }) => ({
    stdout: err.stdout ?? '{}',
  }));
  const found = new Set<string>();
  const walk = (node: NpmNode): void => {
    for (const [name, child] of Object.entries(node.dependencies ?? {})) {
      if (child.version !== undefined) found.add(`${name}@${child.version}`);
      walk(child);
    }
  };
  walk(JSON.parse(stdout) as NpmNode);
  return found;
}

export interface ScriptOutcome {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `node dist/cli/release/<script>.js <args>` to its end (npm test builds first). */
export function runReleaseScript(script: string, args: string[] = []): Promise<ScriptOutcome> {
  return new Promise((resolve) => {
    execFile(process.execPath, [join(projectRoot(), 'dist', 'cli', 'release', `${script}.js`), ...args], { cwd: projectRoot(), maxBuffer: 64 << 20 }, (err, stdout, stderr) =>
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : null) : 0, stdout, stderr }),
    );
  });
}
