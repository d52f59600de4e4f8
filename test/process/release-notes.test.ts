// `npm run release:notes -- <version>`: the compiled script prints a version's section of the real
// CHANGELOG.md, and an unknown version is exit 1 with the versions the changelog has.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { projectRoot } from '../../shared/paths.js';
import { runReleaseScript } from '../helpers/release-tools.js';

t.test('Unreleased prints the section under its heading, exactly', async (t) => {
  const changelog = readFileSync(join(projectRoot(), 'CHANGELOG.md'), 'utf8');
  const section = changelog.slice(changelog.indexOf('## [Unreleased]\n') + '## [Unreleased]\n'.length).split(/^## \[/m)[0] ?? '';
  const outcome = await runReleaseScript('release-notes', ['Unreleased']);
  t.equal(outcome.code, 0, outcome.stderr);
  t.equal(outcome.stdout, `${section.trim()}\n`);
  t.equal(outcome.stderr, '');
});

t.test('an unknown version is exit 1 naming the versions there are', async (t) => {
  const outcome = await runReleaseScript('release-notes', ['9.9.9']);
  t.equal(outcome.code, 1);
  t.equal(outcome.stdout, '');
  t.match(outcome.stderr, /^CHANGELOG\.md has no section for 9\.9\.9; it has: Unreleased(, \S+)*\n$/);
});

t.test('no version is exit 1 with the usage', async (t) => {
  const outcome = await runReleaseScript('release-notes');
  t.equal(outcome.code, 1);
  t.match(outcome.stderr, /^usage: npm run release:notes -- <version>; CHANGELOG\.md has: Unreleased/);
});
