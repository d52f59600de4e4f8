// The changelog parser behind `npm run release:notes`, on the real CHANGELOG.md (it must keep the
// Keep a Changelog form) and on a stub with released versions.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { projectRoot } from '../../shared/paths.js';
import { changelogProblems, parseChangelog, releaseNotes } from '../../cli/release/changelog.js';

const stub = `# Changelog

Preamble with [links](https://keepachangelog.com/en/1.1.0/).

## [Unreleased]

### Added
- Coming soon.

## [0.2.0] - 2026-11-30

### Added
- Thing two.

### Fixed
- Bug two.

## [0.1.0] - 2026-10-01

### Added
- Thing one.
`;

t.test('the stub splits into its versions, newest first, with dates and bodies', async (t) => {
  const sections = parseChangelog(stub);
  t.same(
    sections.map((section) => [section.version, section.date]),
    [
      ['Unreleased', undefined],
      ['0.2.0', '2026-11-30'],
      ['0.1.0', '2026-10-01'],
    ],
  );
  t.equal(releaseNotes(sections, '0.2.0')?.body, '### Added\n- Thing two.\n\n### Fixed\n- Bug two.');
  t.equal(releaseNotes(sections, 'v0.1.0')?.body, '### Added\n- Thing one.', 'a leading v is ignored');
  t.equal(releaseNotes(sections, 'unreleased')?.body, '### Added\n- Coming soon.');
  t.equal(releaseNotes(sections, '0.3.0'), undefined);
  t.same(changelogProblems(sections), []);
});

t.test('headings outside the form are reported', async (t) => {
  t.throws(() => parseChangelog('## 0.1.0\n- x\n'), { message: 'changelog heading "## 0.1.0" is not "## [version] - YYYY-MM-DD" or "## [Unreleased]"' });
  const sections = parseChangelog('## [Unreleased]\n### Added\n- a\n### Fixed (issue 9)\n- b\n### Added\n- c\n## [1.0.0]\n### Removed\n- d\n');
  t.same(changelogProblems(sections), [
    '[Unreleased]: "### Fixed (issue 9)" is not one of Added, Changed, Deprecated, Removed, Fixed, Security',
    '[Unreleased]: "### Added" appears more than once',
    '[1.0.0]: a release needs its date (## [x.y.z] - YYYY-MM-DD)',
  ]);
});

t.test('the real CHANGELOG.md keeps the form, Unreleased on top', async (t) => {
  const sections = parseChangelog(readFileSync(join(projectRoot(), 'CHANGELOG.md'), 'utf8'));
  t.equal(sections[0]?.version, 'Unreleased');
  t.same(changelogProblems(sections), []);
  const unreleased = releaseNotes(sections, 'Unreleased')?.body ?? '';
  t.match(unreleased, /^### Added\n- /, 'the notes open with the Added list');
  t.ok(unreleased.split('\n').filter((line) => line.startsWith('- ')).length >= 87, 'every entry is still there');
});
