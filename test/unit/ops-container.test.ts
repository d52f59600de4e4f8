// The Dockerfile, checked without a container engine (CI can pull no base image): dockerfile-utils, the
// linter behind the Docker language server, finds nothing at error or warning level with every optional
// check turned up to error, and the image keeps its promises: the README's install steps in a build
// stage, a non-root user, the cache dir on the volume, the server on 0.0.0.0, a liveness check.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { validate, ValidationSeverity, type ValidatorSettings } from 'dockerfile-utils';
import { projectRoot } from '../../shared/paths.js';

const dockerfile = readFileSync(join(projectRoot(), 'Dockerfile'), 'utf8');

/** Every optional check of the linter, as an error. */
const strict: ValidatorSettings = {
  deprecatedMaintainer: ValidationSeverity.ERROR,
  directiveCasing: ValidationSeverity.ERROR,
  emptyContinuationLine: ValidationSeverity.ERROR,
  instructionCasing: ValidationSeverity.ERROR,
  instructionCmdMultiple: ValidationSeverity.ERROR,
  instructionEntrypointMultiple: ValidationSeverity.ERROR,
  instructionHealthcheckMultiple: ValidationSeverity.ERROR,
  instructionJSONInSingleQuotes: ValidationSeverity.ERROR,
  instructionWorkdirRelative: ValidationSeverity.ERROR,
};

/** LSP severities: 1 error, 2 warning, 3 information, 4 hint. */
const problems = (text: string): string[] =>
  validate(text, strict)
    .filter((diagnostic) => diagnostic.severity === undefined || diagnostic.severity <= 2)
    .map((diagnostic) => `line ${diagnostic.range.start.line + 1}: ${diagnostic.message}`);

interface Instruction {
  keyword: string;
  args: string;
}

/** The instructions in order, continuation lines joined and comments dropped. */
function instructions(text: string): Instruction[] {
  const logical = text
    .split('\n')
    .filter((line) => !/^\s*#/.test(line))
    .join('\n')
    .replace(/\\\n/g, ' ');
  return logical
    .split('\n')
    .map((line) => /^\s*([A-Za-z]+)\s+(.*)$/.exec(line))
    .filter((match) => match !== null)
    .map((match) => ({ keyword: (match[1] ?? '').toUpperCase(), args: (match[2] ?? '').trim() }));
}

const all = instructions(dockerfile);
const argsOf = (keyword: string): string[] => all.filter((instruction) => instruction.keyword === keyword).map((instruction) => instruction.args);
const lastJson = (keyword: string): string[] => JSON.parse(argsOf(keyword).at(-1) ?? '[]') as string[];
const valueAfter = (list: string[], flag: string): string | undefined => list[list.indexOf(flag) + 1];

t.test('dockerfile-utils: no error or warning, every optional check at error level', async (t) => {
  t.same(problems(dockerfile), []);
  t.ok(problems('FROM node:20\nWORKDIR app\nCMD ["a"]\nCMD ["b"]\n').length >= 2, 'the linter does flag a relative WORKDIR and two CMDs');
});

t.test('two stages: the README install steps on node:20-bookworm, the run on node:20-bookworm-slim', async (t) => {
  t.same(argsOf('FROM'), ['node:20-bookworm AS build', 'node:20-bookworm-slim']);
  const run = argsOf('RUN').join('\n');
  t.match(run, /apt-get install -y --no-install-recommends g\+\+ git make python3/, 'the addon build tools');
  t.match(run, /npm install --no-audit --no-fund\s+&& npm run build\s+&& npm prune --omit=dev/);
  t.equal(argsOf('ENV')[0], 'npm_config_nodedir=/usr/local', "node-gyp uses the image's Node headers: nothing but npm packages is downloaded");
  t.same(argsOf('WORKDIR'), ['/app', '/app'], 'the addon finds its libraries by absolute path: one root in both stages');
});

t.test('the user is not root, and it is the user the image creates', async (t) => {
  const user = argsOf('USER');
  t.same(user, ['10001:10001']);
  t.match(argsOf('RUN').join('\n'), /groupadd --system --gid 10001 semantic\s+&& useradd --system --uid 10001 --gid semantic/);
});

t.test('the cache dir the CMD passes is on the VOLUME, owned by that user', async (t) => {
  const [volume] = lastJson('VOLUME');
  t.equal(volume, '/var/cache/semantic');
  const cacheDir = valueAfter(lastJson('CMD'), '--cache-dir');
  t.equal(cacheDir, `${volume}/agents`);
  t.match(argsOf('RUN').join('\n'), new RegExp(`chown semantic:semantic ${volume}`));
  t.match(argsOf('ENV').join('\n'), /XDG_CACHE_HOME=\/var\/cache\b/, 'the demo model, generated under $XDG_CACHE_HOME/semantic, lands on the volume too');
});

t.test('serve on 0.0.0.0:8080, checked by /health/live with node (the slim image has no curl)', async (t) => {
  t.same(lastJson('ENTRYPOINT'), ['node', '/app/dist/cli/main.js', 'serve', '--host', '0.0.0.0']);
  t.equal(valueAfter(lastJson('CMD'), '--port'), '8080');
  t.same(argsOf('EXPOSE'), ['8080']);
  const [healthcheck] = argsOf('HEALTHCHECK');
  t.match(healthcheck, /CMD \["node", "-e", "fetch\('http:\/\/127\.0\.0\.1:8080\/health\/live'\)/);
  t.same(argsOf('STOPSIGNAL'), ['SIGTERM']);
});

t.test('.dockerignore keeps host builds and dependencies out of the context', async (t) => {
  const ignored = readFileSync(join(projectRoot(), '.dockerignore'), 'utf8').split('\n');
  for (const path of ['.git', 'node_modules', 'build', 'deps', 'dist', '*.gguf']) t.ok(ignored.includes(path), path);
});
