/**
 * `npm run license:check`: every production dependency's license against the allow-list
 * (cli/release/license-policy.json). Exit 1 names each package refused and its license.
 */
import { productionLicenses, readLicensePolicy } from './license-data.js';
import { licenseFailures } from './license-policy.js';

const packages = await productionLicenses();
const failures = licenseFailures(packages, readLicensePolicy());
if (failures.length > 0) {
  process.stderr.write(`license check failed: ${failures.length} of ${packages.length} production packages are not allowed\n`);
  for (const failure of failures) process.stderr.write(`  ${failure}\n`);
  process.stderr.write('Replace the package, or, if its license is in fact allowed, add an exception with the reason to cli/release/license-policy.json.\n');
  process.exitCode = 1;
} else {
  process.stdout.write(`license check passed: ${packages.length} production packages, all under allowed licenses\n`);
}
