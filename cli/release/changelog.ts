/**
 * CHANGELOG.md in Keep a Changelog form (https://keepachangelog.com/en/1.1.0/): `## [Unreleased]` on
 * top, then `## [x.y.z] - YYYY-MM-DD` per release, newest first, each with `### Added`, `### Changed`,
 * `### Deprecated`, `### Removed`, `### Fixed` or `### Security`. The parser is pure, so it is tested
 * on the real file and on stubs; `npm run release:notes` prints one section with it.
 */

export interface ChangelogSection {
  /** `Unreleased` or a version such as `0.2.0`. */
  version: string;
  /** `YYYY-MM-DD`; undefined for Unreleased. */
  date: string | undefined;
  /** The section's text below its `## ` heading, trimmed. */
  body: string;
}

export const changeTypes = ['Added', 'Changed', 'Deprecated', 'Removed', 'Fixed', 'Security'] as const;

const versionHeading = /^## \[([^\]]+)\](?: - (\d{4}-\d{2}-\d{2}))?\s*$/;

/** Splits the changelog at its `## [...]` headings; the text above the first one is the preamble. */
export function parseChangelog(text: string): ChangelogSection[] {
  const sections: ChangelogSection[] = [];
  let current: { version: string; date: string | undefined; lines: string[] } | undefined;
  const close = (): void => {
    if (current) sections.push({ version: current.version, date: current.date, body: current.lines.join('\n').trim() });
  };
  for (const line of text.split(/\r?\n/)) {
    const heading = versionHeading.exec(line);
    if (heading) {
      close();
      current = { version: heading[1] ?? '', date: heading[2], lines: [] };
    } else if (line.startsWith('## ')) {
      throw new Error(`changelog heading "${line}" is not "## [version] - YYYY-MM-DD" or "## [Unreleased]"`);
    } else {
      current?.lines.push(line);
    }
  }
  close();
  return sections;
}

/** Where the file breaks the form: subsections that are not a change type, or one that appears twice in a section. */
export function changelogProblems(sections: readonly ChangelogSection[]): string[] {
  return sections.flatMap((section) => {
    const subsections = section.body.split('\n').flatMap((line) => (line.startsWith('### ') ? [line.slice(4).trim()] : []));
    const unknown = subsections
      .filter((name) => !(changeTypes as readonly string[]).includes(name))
      .map((name) => `[${section.version}]: "### ${name}" is not one of ${changeTypes.join(', ')}`);
    const repeated = subsections.filter((name, i) => subsections.indexOf(name) !== i).map((name) => `[${section.version}]: "### ${name}" appears more than once`);
    const undated = section.version !== 'Unreleased' && section.date === undefined ? [`[${section.version}]: a release needs its date (## [x.y.z] - YYYY-MM-DD)`] : [];
    return [...unknown, ...repeated, ...undated];
  });
}

/** The notes of one version (`Unreleased` included, case-insensitively; a leading `v` is ignored). */
export function releaseNotes(sections: readonly ChangelogSection[], version: string): ChangelogSection | undefined {
  const wanted = version.replace(/^v(?=\d)/, '');
  return sections.find((section) => section.version === wanted || (wanted.toLowerCase() === 'unreleased' && section.version === 'Unreleased'));
}
