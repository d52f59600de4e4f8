/**
 * Claude Code end to end (issue 15), not part of `npm test`: installs `@anthropic-ai/claude-code` by
 * package name into the user cache (outside the repo; reused when present), starts `semantic serve`
 * with default settings plus the documented aliases, and runs `claude -p "Say hello"` twice in one
 * directory (two sessions). Each session must exit 0 with `is_error: false` and a result, and the
 * second must read the first one's prompt from the agent's cache. README "Claude Code" says what to
 * expect.
 *
 *   npm run test:claude-code                          # the tiny model whose answers end (make-model --ends-turns)
 *   SEMANTIC_CLAUDE_CODE_MODEL=path/to/model.gguf npm run test:claude-code
 *   SEMANTIC_CLAUDE_CODE_CAPTURE=path.json npm run test:claude-code   # also writes session 1's main request, its text replaced
 *
 * Without a model named, it serves the random-weight tiny model's --ends-turns variant: the plain demo
 * model never ends a turn by itself, so its answers stop at max_tokens, which Claude Code reports as
 * an error. The variant's trained context (32768) holds Claude Code's first prompt (about 27,000
 * tokens), so the server needs no --context-size.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { projectRoot, userCacheDir } from '../shared/paths.js';
import { ensureModel } from '../shared/gguf/make-model.js';
import { startCaptureProxy } from './claude-code-capture.js';

const aliases = 'claude-sonnet-4-5,claude-haiku-4-5';
const model = process.env.SEMANTIC_CLAUDE_CODE_MODEL ?? (await ensureModel('tiny', 0, { endsTurns: true }));
const capturePath = process.env.SEMANTIC_CLAUDE_CODE_CAPTURE;
const installDir = process.env.SEMANTIC_CLAUDE_CODE_DIR ?? join(userCacheDir(), 'claude-code');
const claudeBin = join(installDir, 'node_modules', '.bin', 'claude');

/** Installs the package once; runs its postinstall by hand where npm skipped install scripts. */
function ensureClaudeCode(): void {
  if (!existsSync(claudeBin)) {
    mkdirSync(installDir, { recursive: true });
    console.log(`installing @anthropic-ai/claude-code into ${installDir} (about 240 MB)…`);
    const npm = spawnSync('npm', ['install', '--no-save', '--no-audit', '--no-fund', '--prefix', installDir, '@anthropic-ai/claude-code'], { stdio: 'inherit' });
    if (npm.status !== 0) throw new Error(`npm install failed (exit ${npm.status})`);
  }
  if (spawnSync(claudeBin, ['--version']).status === 0) return;
  spawnSync(process.execPath, ['install.cjs'], { cwd: join(installDir, 'node_modules', '@anthropic-ai', 'claude-code'), stdio: 'inherit' });
  const version = spawnSync(claudeBin, ['--version'], { encoding: 'utf8' });
  if (version.status !== 0) throw new Error(`claude --version failed: ${version.stderr}`);
}

interface Server {
  url: string;
  stop(): void;
}

/** `semantic serve` on a free port, resolved at its `ready` log line. */
function startSemantic(): Promise<Server> {
  const args = ['serve', '--port', '0', '--model-alias', aliases, '--cache-dir', mkdtempSync(join(tmpdir(), 'semantic-cc-cache-'))];
  const child = spawn(process.execPath, [join(projectRoot(), 'dist', 'cli', 'main.js'), ...args, '--model', model], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return new Promise((resolve, reject) => {
    let port: number | undefined;
    child.once('exit', (code) => reject(new Error(`semantic exited with ${code} before it was ready`)));
    createInterface({ input: child.stdout }).on('line', (line) => {
      const entry = JSON.parse(line) as { msg?: string; port?: number };
      if (entry.msg === 'listening') port = entry.port;
      if (entry.msg === 'ready' && port !== undefined) resolve({ url: `http://127.0.0.1:${port}`, stop: () => child.kill('SIGTERM') });
    });
  });
}

interface ClaudeResult {
  is_error: boolean;
  api_error_status: number | null;
  result: string;
  session_id: string;
  usage: { input_tokens: number; cache_read_input_tokens: number; cache_creation_input_tokens: number; output_tokens: number };
}

interface Session {
  code: number | null;
  result: ClaudeResult;
  seconds: number;
}

/** Runs claude to its exit without blocking this process, whose capture proxy must keep serving. */
function runToExit(args: string[], cwd: string, env: NodeJS.ProcessEnv): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(claudeBin, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'], timeout: 600_000 });
  let [stdout, stderr] = ['', ''];
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** One print-mode session, as a user runs it; Claude Code's own HOME so no user config interferes. */
async function runClaude(url: string, cwd: string, home: string): Promise<Session> {
  const env = {
    PATH: process.env.PATH ?? '',
    HOME: home,
    ANTHROPIC_BASE_URL: url,
    ANTHROPIC_AUTH_TOKEN: 'not-checked-by-a-keyless-server',
    ANTHROPIC_MODEL: 'claude-sonnet-4-5',
    ANTHROPIC_DEFAULT_HAIKU_MODEL: 'claude-haiku-4-5',
    CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1',
    DISABLE_TELEMETRY: '1',
    DISABLE_AUTOUPDATER: '1',
  };
  const started = Date.now();
  const run = await runToExit(['-p', 'Say hello', '--output-format', 'json'], cwd, env);
  const seconds = Math.round((Date.now() - started) / 100) / 10;
  let result: ClaudeResult;
  try {
    result = JSON.parse(run.stdout) as ClaudeResult;
  } catch {
    throw new Error(`claude printed no JSON result (exit ${run.code}): ${run.stdout}${run.stderr}`);
  }
  return { code: run.code, result, seconds };
}

function check(session: string, run: Session): string[] {
  const { code, result } = run;
  console.log(`${session}: exit ${code} in ${run.seconds} s; result ${JSON.stringify(result.result.slice(0, 120))}; usage ${JSON.stringify(result.usage)}`);
  const problems: string[] = [];
  if (result.api_error_status !== null) problems.push(`${session}: an API error ${result.api_error_status}: ${result.result}`);
  if (code !== 0 || result.is_error) problems.push(`${session}: exit ${code}, is_error ${result.is_error}`);
  if (result.result.trim() === '') problems.push(`${session}: an empty result`);
  return problems;
}

const promptTokens = (usage: ClaudeResult['usage']) => usage.input_tokens + usage.cache_creation_input_tokens + usage.cache_read_input_tokens;

/**
 * The second session sends the first one's system prompt and tools again: read from the cache. With
 * the --ends-turns model each session makes one main request, and both send the same prompt (same
 * directory, same words, same day), so session 2 computes one token: the last, whose logits it needs.
 * A real model may use tools and make more requests, so with one named only reads are required.
 */
function cacheProblems(first: ClaudeResult['usage'], second: ClaudeResult['usage']): string[] {
  if (process.env.SEMANTIC_CLAUDE_CODE_MODEL !== undefined) return second.cache_read_input_tokens > 0 ? [] : ['session 2: no request read the cache'];
  const expected = promptTokens(first) - 1;
  return second.cache_read_input_tokens === expected && promptTokens(second) === promptTokens(first)
    ? []
    : [`session 2: read ${second.cache_read_input_tokens} tokens of its ${promptTokens(second)} from the cache; expected ${expected} of ${promptTokens(first)}`];
}

ensureClaudeCode();
const server = await startSemantic();
const proxy = capturePath === undefined ? undefined : await startCaptureProxy(server.url);
const cwd = mkdtempSync(join(tmpdir(), 'semantic-cc-work-'));
const home = mkdtempSync(join(tmpdir(), 'semantic-cc-home-'));
try {
  const first = await runClaude(proxy?.url ?? server.url, cwd, home);
  const captured = proxy?.captured();
  if (capturePath !== undefined) {
    if (captured === undefined) throw new Error('session 1 sent no main /v1/messages request to capture');
    writeFileSync(capturePath, `${JSON.stringify(captured, null, 2)}\n`);
    console.log(`wrote session 1's main request to ${capturePath}`);
  }
  const second = await runClaude(proxy?.url ?? server.url, cwd, home);
  const problems = [...check('session 1', first), ...check('session 2', second)];
  problems.push(...cacheProblems(first.result.usage, second.result.usage));
  if (first.result.session_id === second.result.session_id) problems.push('the two sessions share an id');
  for (const problem of problems) console.log(`FAIL ${problem}`);
  console.log(problems.length === 0 ? 'claude-code e2e: ok' : 'claude-code e2e: failed');
  process.exitCode = problems.length === 0 ? 0 : 1;
} finally {
  await proxy?.close();
  server.stop();
}
