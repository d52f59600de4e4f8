// `npm run sbom`: the real script writes a CycloneDX 1.6 SBOM that the CycloneDX library's strict
// schema validator accepts, with every installed production package and the native llama.cpp and
// ggml components the addon links (versions, licenses, purls, dependency edges from the root).
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { projectRoot } from '../../shared/paths.js';
import { sbomSchemaErrors } from '../../cli/release/sbom-schema.js';
import { npmProductionPackages, runReleaseScript } from '../helpers/release-tools.js';

interface Component {
  'bom-ref': string;
  group?: string;
  name: string;
  version: string;
  purl?: string;
  licenses?: { license?: { id?: string } }[];
  components?: Component[];
}

interface Bom {
  specVersion: string;
  metadata: { component: Component };
  components: Component[];
  dependencies: { ref: string; dependsOn?: string[] }[];
}

const allComponents = (components: Component[]): Component[] => components.flatMap((component) => [component, ...allComponents(component.components ?? [])]);
const fullName = (component: Component): string => `${component.group !== undefined ? `${component.group}/` : ''}${component.name}@${component.version}`;

const scratch = mkdtempSync(join(tmpdir(), 'semantic-sbom-test-'));
t.teardown(() => rmSync(scratch, { recursive: true, force: true }));
const output = join(scratch, 'sbom.cdx.json');
const [outcome, tree] = await Promise.all([runReleaseScript('sbom', [output]), npmProductionPackages()]);

t.test('the script writes an SBOM that validates against CycloneDX 1.6', async (t) => {
  t.equal(outcome.code, 0, outcome.stderr);
  t.match(outcome.stdout, /^SBOM \(CycloneDX 1\.6, \d+ top-level components\) written to /);
  const json = readFileSync(output, 'utf8');
  t.equal(await sbomSchemaErrors(json), null, 'the strict JSON schema finds nothing');
  const bom = JSON.parse(json) as Bom;
  t.equal(bom.specVersion, '1.6');
  const semantic = JSON.parse(readFileSync(join(projectRoot(), 'package.json'), 'utf8')) as { version: string };
  t.equal(fullName(bom.metadata.component), `semantic@${semantic.version}`);
});

t.test('the validator refuses what the schema does not allow', async (t) => {
  const bom = JSON.parse(readFileSync(output, 'utf8')) as Bom & Record<string, unknown>;
  t.not(await sbomSchemaErrors(JSON.stringify({ ...bom, specVersion: '1.6', unexpected: true })), null, 'strict: an unknown top-level field');
  const badLicense = { ...bom, components: [{ ...bom.components[0], licenses: [{ license: { id: 'Not-A-License' } }] }] };
  t.not(await sbomSchemaErrors(JSON.stringify(badLicense)), null, 'a license id that is not SPDX');
});

t.test('every production package npm installed is a component', async (t) => {
  const bom = JSON.parse(readFileSync(output, 'utf8')) as Bom;
  const npmComponents = new Set(
    allComponents(bom.components)
      .filter((component) => component.purl?.startsWith('pkg:npm/'))
      .map(fullName),
  );
  t.same([...npmComponents].sort(), [...tree].sort());
});

t.test('llama.cpp and ggml are components at their release, MIT, depended on from the root', async (t) => {
  const bom = JSON.parse(readFileSync(output, 'utf8')) as Bom;
  // The release the install step built against: node-llama-cpp's llama/ folder, kept in the user's cache by addon/llama-source.mjs.
  const source = execFileSync(process.execPath, [join(projectRoot(), 'addon', 'llama-source.mjs')], { encoding: 'utf8' }).trim();
  const info = JSON.parse(readFileSync(join(source, 'llama', 'llama.cpp.info.json'), 'utf8')) as { tag: string };
  const llama = bom.components.find((component) => component.name === 'llama.cpp');
  const ggml = bom.components.find((component) => component.name === 'ggml');
  t.match(llama, { group: 'ggml-org', version: info.tag, purl: `pkg:github/ggml-org/llama.cpp@${info.tag}`, licenses: [{ license: { id: 'MIT' } }] });
  t.match(ggml, { group: 'ggml-org', version: info.tag, purl: `pkg:github/ggml-org/llama.cpp@${info.tag}#ggml`, licenses: [{ license: { id: 'MIT' } }] });
  const dependsOn = (ref: string | undefined): string[] => bom.dependencies.find((dependency) => dependency.ref === ref)?.dependsOn ?? [];
  t.ok(dependsOn(bom.metadata.component['bom-ref']).includes(llama?.['bom-ref'] ?? '?'), 'the root depends on llama.cpp');
  t.same(dependsOn(llama?.['bom-ref']), [ggml?.['bom-ref']], 'llama.cpp depends on ggml');
  const platformPackages = allComponents(bom.components).filter((component) => component.group === '@node-llama-cpp');
  t.ok(platformPackages.length > 0, 'a @node-llama-cpp/<platform> library package is installed');
  for (const component of platformPackages) t.ok(dependsOn(component['bom-ref']).includes('native:llama.cpp'), `${fullName(component)} carries llama.cpp`);
});
