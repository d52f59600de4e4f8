/**
 * `npm run release:notes -- <version>`: prints one version's section of CHANGELOG.md (`Unreleased`
 * for the coming release), as a release page's text. Exit 1 when the version has no section.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { projectRoot } from '../../shared/paths.js';
import { parseChangelog, releaseNotes } from './changelog.js';

const version = process.argv[2];
const sections = parseChangelog(readFileSync(join(projectRoot(), 'CHANGELOG.md'), 'utf8'));
const notes = version === undefined ? undefined : releaseNotes(sections, version);
if (version === undefined || notes === undefined) {
  const known = sections.map((section) => section.version).join(', ');
  process.stderr.write(
    version === undefined ? `usage: npm run release:notes -- <version>; CHANGELOG.md has: ${known}\n` : `CHANGELOG.md has no section for ${version}; it has: ${known}\n`,
  );
  process.exit(1);
}
process.stdout.write(`${notes.body}\n`);
