// `npm run license:check` on the real production tree: every package npm installed is judged, and the
// tree passes the allow-list. The same real data, under a narrower policy, names what it refuses.
import t from 'tap';
import { productionLicenses, readLicensePolicy } from '../../cli/release/license-data.js';
import { licenseFailures } from '../../cli/release/license-policy.js';
import { npmProductionPackages, runReleaseScript } from '../helpers/release-tools.js';

const tree = npmProductionPackages();

t.test('the production tree passes the license policy, every package judged', async (t) => {
  const [outcome, listed] = await Promise.all([runReleaseScript('license-check'), tree]);
  t.equal(outcome.code, 0, outcome.stderr);
  t.equal(outcome.stdout, `license check passed: ${listed.size} production packages, all under allowed licenses\n`);
});

t.test('the checker reads the same packages npm lists, without our own', async (t) => {
  const [packages, listed] = await Promise.all([productionLicenses(), tree]);
  t.same(packages.map((pkg) => `${pkg.name}@${pkg.version}`).sort(), [...listed].sort());
  t.notOk(
    packages.some((pkg) => pkg.name === 'semantic'),
    'our own package is not a dependency',
  );
  const narrower = { ...readLicensePolicy(), allowed: readLicensePolicy().allowed.filter((id) => id !== 'BlueOak-1.0.0') };
  const refused = licenseFailures(packages, narrower);
  const blueOak = packages.filter((pkg) => pkg.license === 'BlueOak-1.0.0');
  t.ok(blueOak.length > 0, 'the tree has BlueOak-1.0.0 packages (minipass, chownr, …)');
  t.same(
    refused,
    blueOak.map((pkg) => `${pkg.name}@${pkg.version}: license BlueOak-1.0.0 is not on the allow-list`),
  );
});
