// The license allow-list on stubbed checker data: SPDX OR/AND expressions, WITH, arrays, guessed,
// unknown and missing licenses, and exceptions that hold for one release only.
import t from 'tap';
import { judgeLicense, licenseExpression, licenseFailures, type LicensePolicy, type PackageLicense } from '../../cli/release/license-policy.js';

const policy: LicensePolicy = { allowed: ['MIT', 'Apache-2.0', 'BSD-2-Clause', 'ISC'], exceptions: [] };
const pkg = (license: PackageLicense['license'], name = 'pkg'): PackageLicense => ({ name, version: '1.0.0', license });
const allowed = (license: PackageLicense['license']): boolean => judgeLicense(pkg(license), policy).allowed;

t.test('a single allowed id passes and any other id fails', async (t) => {
  t.equal(allowed('MIT'), true);
  t.equal(allowed('ISC'), true);
  t.equal(allowed('GPL-3.0-only'), false);
  t.equal(allowed('mit'), false, 'SPDX ids are matched exactly');
});

t.test('OR passes when one side is allowed, AND only when all are', async (t) => {
  t.equal(allowed('(MIT OR GPL-3.0-only)'), true);
  t.equal(allowed('(BSD-2-Clause OR MIT OR Apache-2.0)'), true);
  t.equal(allowed('GPL-2.0-only OR AGPL-3.0-only'), false);
  t.equal(allowed('(MIT AND Apache-2.0)'), true);
  t.equal(allowed('(MIT AND GPL-3.0-only)'), false);
  t.equal(allowed('MIT AND (GPL-3.0-only OR ISC)'), true, 'parentheses group the OR');
  t.equal(allowed('GPL-3.0-only OR MIT AND ISC'), true, 'AND binds tighter: GPL OR (MIT AND ISC)');
  t.equal(allowed('MIT AND GPL-3.0-only OR ISC'), true, '(MIT AND GPL) OR ISC');
  t.equal(allowed('MIT and ISC'), true, 'lower-case operators are SPDX too');
});

t.test('WITH exceptions and malformed expressions fail with the reason', async (t) => {
  t.same(judgeLicense(pkg('Apache-2.0 WITH LLVM-exception'), policy), { allowed: false, reason: 'license Apache-2.0 WITH LLVM-exception is not on the allow-list' });
  t.same(judgeLicense(pkg('(MIT OR'), policy), { allowed: false, reason: 'license "(MIT OR" is not an SPDX expression (the expression ends too early)' });
  t.same(judgeLicense(pkg('MIT ISC'), policy), { allowed: false, reason: 'license "MIT ISC" is not an SPDX expression (unexpected "ISC")' });
});

t.test('missing, unknown and guessed licenses fail', async (t) => {
  t.same(judgeLicense(pkg(undefined), policy), { allowed: false, reason: 'declares no license' });
  t.same(judgeLicense(pkg(''), policy), { allowed: false, reason: 'declares no license' });
  t.same(judgeLicense(pkg([]), policy), { allowed: false, reason: 'declares no license' });
  t.same(judgeLicense(pkg('UNKNOWN'), policy), { allowed: false, reason: 'declares no license' });
  t.same(judgeLicense(pkg('MIT*'), policy), { allowed: false, reason: 'license MIT* is guessed from its license file, not declared' });
});

t.test('several declared licenses are alternatives', async (t) => {
  t.equal(licenseExpression(['MIT', 'GPL-2.0-only']), '(MIT) OR (GPL-2.0-only)');
  t.equal(allowed(['GPL-2.0-only', 'Apache-2.0']), true);
  t.equal(allowed(['GPL-2.0-only', 'AGPL-3.0-only']), false);
});

t.test('an exception covers its package release and license only', async (t) => {
  const excepted: LicensePolicy = { ...policy, exceptions: [{ package: 'odd@1.0.0', license: 'Custom', reason: 'read by a person: MIT text' }] };
  t.same(judgeLicense(pkg('Custom', 'odd'), excepted), { allowed: true, via: 'exception' });
  t.equal(judgeLicense({ name: 'odd', version: '1.0.1', license: 'Custom' }, excepted).allowed, false, 'a new release is read again');
  t.equal(judgeLicense(pkg('GPL-3.0-only', 'odd'), excepted).allowed, false, 'a changed license is read again');
  t.same(judgeLicense(pkg('MIT'), policy), { allowed: true, via: 'policy' });
});

t.test('failures name each refused package and its license, sorted', async (t) => {
  const packages = [pkg('MIT', 'fine'), pkg('GPL-3.0-only', 'zeta'), pkg(undefined, 'alpha'), pkg('(MIT OR GPL-3.0-only)', 'dual')];
  t.same(licenseFailures(packages, policy), ['alpha@1.0.0: declares no license', 'zeta@1.0.0: license GPL-3.0-only is not on the allow-list']);
});
