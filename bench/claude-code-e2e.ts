/**
 * Claude Code end to end (issue 15), not part of `npm test`: installs `@anthropic-ai/claude-code` by
 * package name into the user cache (outside the repo; reused when present), starts `semantic serve`
 * with default settings plus the documented aliases, and runs `claude -p "Say hello"` twice in one
 * directory (two sessions), each with its own checks. README "Claude Code" says what to expect.
 *
 *   npm run test:claude-code                          # the demo model (random weights)
 *   SEMANTIC_CLAUDE_CODE_MODEL=path/to/model.gguf npm run test:claude-code
 *
 * With a real instruct model each run must exit 0 with a result. The demo model never ends a turn by
 * itself (its weights are random, it rarely samples end-of-turn), so Claude Code's answer always stops
 * at max_tokens, which Claude Code reports as an error after its retries: with it the checks are that
 * every request was answered 200 (`api_error_status: null`), the answer came, and the later requests
 * read the earlier ones' prompt from the cache. Its context is set to 32768: its training context
 * (8192) is smaller than Claude Code's first prompt (about 27,000 tokens with Claude Code 2.1).
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { projectRoot, userCacheDir } from '../shared/paths.js';

const aliases = 'claude-sonnet-4-5,claude-haiku-4-5';
const model = process.env.SEMANTIC_CLAUDE_CODE_MODEL;
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
  const child = spawn(process.execPath, [join(projectRoot(), 'dist', 'cli', 'main.js'), ...args, ...(model === undefined ? ['--context-size', '32768'] : ['--model', model])], {
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
  usage: { cache_read_input_tokens: number; cache_creation_input_tokens: number; output_tokens: number };
}

/** One print-mode session, as a user runs it; Claude Code's own HOME so no user config interferes. */
function runClaude(url: string, cwd: string, home: string): { code: number | null; result: ClaudeResult; seconds: number } {
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
    // The demo model's answers run to max_tokens: keep each one short.
    ...(model === undefined ? { CLAUDE_CODE_MAX_OUTPUT_TOKENS: '64', MAX_THINKING_TOKENS: '0' } : {}),
  };
  const started = Date.now();
  const run = spawnSync(claudeBin, ['-p', 'Say hello', '--output-format', 'json'], { cwd, env, encoding: 'utf8', timeout: 600_000 });
  const seconds = Math.round((Date.now() - started) / 100) / 10;
  let result: ClaudeResult;
  try {
    result = JSON.parse(run.stdout) as ClaudeResult;
  } catch {
    throw new Error(`claude printed no JSON result (exit ${run.status}): ${run.stdout}${run.stderr}`);
  }
  return { code: run.status, result, seconds };
}

function check(session: string, run: ReturnType<typeof runClaude>): string[] {
  const { code, result } = run;
  console.log(`${session}: exit ${code} in ${run.seconds} s; result ${JSON.stringify(result.result.slice(0, 120))}; usage ${JSON.stringify(result.usage)}`);
  const problems: string[] = [];
  if (result.api_error_status !== null) problems.push(`${session}: an API error ${result.api_error_status}: ${result.result}`);
  if (model !== undefined) {
    if (code !== 0 || result.is_error) problems.push(`${session}: exit ${code}, is_error ${result.is_error}`);
    if (result.result.trim() === '') problems.push(`${session}: an empty result`);
  } else if (result.usage.output_tokens === 0) problems.push(`${session}: no output tokens`);
  return problems;
}

ensureClaudeCode();
const server = await startSemantic();
const cwd = mkdtempSync(join(tmpdir(), 'semantic-cc-work-'));
const home = mkdtempSync(join(tmpdir(), 'semantic-cc-home-'));
try {
  const first = runClaude(server.url, cwd, home);
  const second = runClaude(server.url, cwd, home);
  const problems = [...check('session 1', first), ...check('session 2', second)];
  // The second session sends the first one's system prompt and tools again: read from the cache.
  if (second.result.usage.cache_read_input_tokens === 0) problems.push('session 2: no request read the cache');
  if (first.result.session_id === second.result.session_id) problems.push('the two sessions share an id');
  for (const problem of problems) console.log(`FAIL ${problem}`);
  console.log(problems.length === 0 ? 'claude-code e2e: ok' : 'claude-code e2e: failed');
  process.exitCode = problems.length === 0 ? 0 : 1;
} finally {
  server.stop();
}
