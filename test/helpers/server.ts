/**
 * Spawns the real `semantic` CLI as a child process on a loopback ephemeral port and waits for its
 * log line saying it is ready (no polling, no sleeps). The process is killed when the test ends.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { projectRoot } from '../../shared/paths.js';

export interface RunningServer {
  url: string;
  port: number;
  child: ChildProcess;
  /** Every JSON log line the process printed so far. */
  logs: Record<string, unknown>[];
  exited: Promise<number | null>;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export const cliPath = join(projectRoot(), 'dist', 'cli', 'main.js');

/** Starts `semantic <args>` and resolves once a log line with `msg === readyMessage` appears. */
export interface CliOutcome {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `semantic <args>` to its end with only the given SEMANTIC_* variables set. */
export function runCli(args: string[], env: Record<string, string> = {}): Promise<CliOutcome> {
  const cleanEnv = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('SEMANTIC_')));
  const child = spawn(process.execPath, [cliPath, ...args], { env: { ...cleanEnv, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  return new Promise((resolve) => child.once('close', (code) => resolve({ code, stdout, stderr })));
}

/**
 * `serve` of a test model named `tiny` on one llama.cpp thread, then `options` as flags
 * (`{ 'context-size': 4096 }` → `--context-size 4096`).
 */
export function tinyServeArgs(modelPath: string, options: Record<string, string | number> = {}, port: number | string = 0): string[] {
  const flags = Object.entries(options).flatMap(([name, value]) => [`--${name}`, String(value)]);
  return ['serve', '--port', String(port), '--model', modelPath, '--model-id', 'tiny', '--threads', '1', ...flags];
}

export function startServer(args: string[], readyMessage = 'ready', env: NodeJS.ProcessEnv = {}): Promise<RunningServer> {
  // Agents' cache files of one test never leak into another: a fresh cache dir unless one is given.
  const serving = args[0] === 'serve' || args[0] === 'supervise';
  if (serving && !args.includes('--cache-dir')) args = [...args, '--cache-dir', mkdtempSync(join(tmpdir(), 'semantic-agents-'))];
  const child = spawn(process.execPath, [cliPath, ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: Record<string, unknown>[] = [];
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  return new Promise((resolve, reject) => {
    const lines = createInterface({ input: child.stdout! });
    lines.on('line', (line) => {
      let entry: Record<string, unknown>;
      try {
        entry = JSON.parse(line) as Record<string, unknown>;
      } catch {
        return;
      }
      logs.push(entry);
      if (entry.msg === readyMessage && typeof entry.port === 'number') {
        const port = entry.port;
        resolve({
          url: `http://127.0.0.1:${port}`,
          port,
          child,
          logs,
          exited,
          stop: async (signal: NodeJS.Signals = 'SIGTERM') => {
            if (child.exitCode === null && child.signalCode === null) child.kill(signal);
            return exited;
          },
        });
      }
    });
    void exited.then((code) => reject(new Error(`semantic ${args.join(' ')} exited with ${code} before "${readyMessage}":\n${stderr}`)));
  });
}

/** Resolves once the server has logged at least `count` lines that match (e.g. an agent's cache file written). */
export function logged(server: RunningServer, matches: (line: Record<string, unknown>) => boolean, count = 1): Promise<void> {
  const enough = (): boolean => server.logs.filter(matches).length >= count;
  if (enough()) return Promise.resolve();
  return new Promise((resolve) => {
    const onData = (): void => {
      if (!enough()) return;
      server.child.stdout?.off('data', onData);
      resolve();
    };
    server.child.stdout?.on('data', onData);
  });
}

/** Resolves once the agent's cache file has been written `count` times in all. */
export function persisted(server: RunningServer, agentId: string, count = 1): Promise<void> {
  return logged(server, (line) => line.msg === 'agent cache persisted' && line.agentId === agentId, count);
}

/**
 * `semantic serve` of the tiny model with one sequence and the given RAM budget and cache dir, stopped
 * when the test ends: the server of the tests that watch one agent's cache move between tiers.
 */
export async function serveOneSequence(
  t: { teardown(fn: () => unknown): void },
  modelPath: string,
  options: { contextSize: number; ramCacheBytes: number; cacheDir: string },
): Promise<RunningServer> {
  const server = await startServer(
    tinyServeArgs(modelPath, { 'context-size': options.contextSize, 'max-sequences': 1, 'ram-cache-bytes': options.ramCacheBytes, 'cache-dir': options.cacheDir }),
  );
  t.teardown(() => server.stop());
  return server;
}
