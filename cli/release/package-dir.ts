/**
 * The folder of an installed package, found along Node's own lookup paths. `require.resolve` of
 * `<name>/package.json` fails for packages whose `exports` hide it (node-llama-cpp,
 * @cyclonedx/cyclonedx-npm), and their main files sit at different depths.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';

/** Looks for `name` as a require from `fromDir` would. */
export function packageDir(name: string, fromDir: string): string {
  const lookupPaths = createRequire(join(fromDir, 'package.json')).resolve.paths(name) ?? [];
  const found = lookupPaths.map((dir) => join(dir, name)).find((dir) => existsSync(join(dir, 'package.json')));
  if (found === undefined) throw new Error(`${name} is not installed (looked from ${fromDir}): run npm install`);
  return found;
}
