/**
 * `npm run sbom [-- <file>]`: a CycloneDX 1.6 JSON SBOM of the production dependency tree, written to
 * sbom.cdx.json (or <file>). @cyclonedx/cyclonedx-npm generates the npm part from `npm ls`; the
 * native libraries the addon links are added (sbom-natives.ts), and the result is validated against
 * the CycloneDX 1.6 schema before it is written, so an invalid SBOM is never left behind.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { projectRoot } from '../../shared/paths.js';
import { packageDir } from './package-dir.js';
import { llamaCppFacts } from './native-components.js';
import { withNativeComponents, type Sbom } from './sbom-natives.js';
import { sbomSchemaErrors } from './sbom-schema.js';

function generatorCli(root: string): string {
  return join(packageDir('@cyclonedx/cyclonedx-npm', root), 'bin', 'cyclonedx-npm-cli.js');
}

/** The npm part, from cyclonedx-npm (its own validation is skipped: the final document is validated). */
function npmSbom(root: string): Sbom {
  const scratch = mkdtempSync(join(tmpdir(), 'semantic-sbom-'));
  try {
    const file = join(scratch, 'npm.cdx.json');
    const args = ['--omit', 'dev', '--spec-version', '1.6', '--output-format', 'JSON', '--no-validate', '--output-file', file];
    execFileSync(process.execPath, [generatorCli(root), ...args], { cwd: root, stdio: ['ignore', 'ignore', 'pipe'] });
    return JSON.parse(readFileSync(file, 'utf8')) as Sbom;
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

const root = projectRoot();
const output = resolve(process.argv[2] ?? join(root, 'sbom.cdx.json'));
const sbom = withNativeComponents(npmSbom(root), llamaCppFacts(root));
const json = JSON.stringify(sbom, null, 2) + '\n';
const errors = await sbomSchemaErrors(json, root);
if (errors !== null) {
  process.stderr.write(`the SBOM does not validate against CycloneDX 1.6:\n${JSON.stringify(errors, null, 2)}\n`);
  process.exit(1);
}
writeFileSync(output, json);
process.stdout.write(`SBOM (CycloneDX ${sbom.specVersion}, ${sbom.components.length} top-level components) written to ${output}\n`);
