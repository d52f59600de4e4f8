/**
 * Validation of an SBOM against the CycloneDX 1.6 JSON schema (strict: no properties the schema does
 * not name), with the CycloneDX library's own validator. The library is not a declared dependency of
 * ours: it is the one @cyclonedx/cyclonedx-npm generates with, so it is loaded from that package's
 * folder, and the schema always matches the generator. It validates with ajv 8 and ajv-formats, which
 * must resolve from its folder (devDependencies `ajv` and `ajv-formats`, docs/releasing.md).
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { projectRoot } from '../../shared/paths.js';
import { packageDir } from './package-dir.js';

interface CycloneDxValidation {
  Validation: { JsonStrictValidator: new (version: string) => { validate(json: string): Promise<unknown> } };
  Spec: { Version: { v1dot6: string } };
}

function cycloneDxLibrary(root: string): CycloneDxValidation {
  const libraryDir = packageDir('@cyclonedx/cyclonedx-library', packageDir('@cyclonedx/cyclonedx-npm', root));
  // With ajv 6 (eslint's) hoisted instead, the library fails deep inside ajv-formats with a TypeError.
  const fromLibrary = createRequire(join(libraryDir, 'package.json'));
  const ajv = JSON.parse(readFileSync(fromLibrary.resolve('ajv/package.json'), 'utf8')) as { version: string };
  if (!ajv.version.startsWith('8.')) {
    throw new Error(`the CycloneDX validator needs ajv 8 but finds ajv ${ajv.version} from ${libraryDir}: install the devDependencies ajv and ajv-formats (docs/releasing.md)`);
  }
  return fromLibrary(libraryDir) as CycloneDxValidation;
}

/** The schema's complaints about an SBOM's JSON text, or null when it is valid CycloneDX 1.6. */
export async function sbomSchemaErrors(json: string, root: string = projectRoot()): Promise<unknown> {
  const library = cycloneDxLibrary(root);
  const validator = new library.Validation.JsonStrictValidator(library.Spec.Version.v1dot6);
  return await validator.validate(json);
}
