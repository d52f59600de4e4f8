/**
 * Debian's nginx run by a test as a child process, in front of `semantic serve` replicas, with the
 * shipped ops/nginx/semantic.conf as its configuration: only the replicas' addresses and the listen
 * port are replaced, so the routing directives a test exercises are the ones operators install.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { delimiter, join } from 'node:path';
import { projectRoot } from '../../shared/paths.js';

export const shippedConfigPath = join(projectRoot(), 'ops', 'nginx', 'semantic.conf');

/**
 * Added by the test's own top-level config, not by the shipped file: which replica answered (the
 * last address of `$upstream_addr`; earlier ones are replicas nginx tried first).
 */
export const UPSTREAM_HEADER = 'x-test-upstream';

export interface RunningProxy {
  url: string;
  child: ChildProcess;
  stop(): Promise<void>;
}

/** The nginx binary, or an error that says how to install it (.ci/run does). */
export function nginxPath(): string {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin', '/usr/local/sbin'].filter((dir) => dir.startsWith('/'));
  const found = dirs.map((dir) => join(dir, 'nginx')).find((path) => existsSync(path));
  if (found === undefined) throw new Error("nginx is not installed: this test runs Debian's nginx package (apt-get install nginx; .ci/run installs it when missing).");
  return found;
}

/** A free loopback port (bound, read, released): nginx needs its port in the config file. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address !== null ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

/**
 * The shipped file with its `server host:port …;` lines inside the upstream replaced by one line per
 * replica (keeping the parameters of the first), and its `listen` by the given port on loopback.
 */
export function shippedConfigFor(replicaPorts: readonly number[], listenPort: number): string {
  const shipped = readFileSync(shippedConfigPath, 'utf8');
  const serverLine = /^([ \t]*)server[ \t]+\S+:\d+([ \t][^;]*)?;[ \t]*$/gm;
  const lines = [...shipped.matchAll(serverLine)];
  const first = lines[0];
  if (first === undefined) throw new Error(`${shippedConfigPath} has no "server host:port;" line in its upstream`);
  const [indent, params] = [first[1] ?? '', first[2] ?? ''];
  const replicas = replicaPorts.map((port) => `${indent}server 127.0.0.1:${port}${params};`).join('\n');
  let replaced = shipped.replace(serverLine, (line) => (line === first[0] ? replicas : '')).replace(/\n{3,}/g, '\n\n');
  const listen = /^([ \t]*)listen[ \t]+[^;]+;/m;
  if (!listen.test(replaced)) throw new Error(`${shippedConfigPath} has no listen directive`);
  replaced = replaced.replace(listen, `$1listen 127.0.0.1:${listenPort};`);
  return replaced;
}

/** The top-level config around the shipped one: foreground, files under `prefix`, the upstream header. */
function topLevelConfig(prefix: string): string {
  const temp = ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((kind) => `  ${kind}_temp_path ${join(prefix, kind)};`).join('\n');
  return [
    // Workers as root only when the master is root (as in CI): the default user cannot enter the temp dir.
    process.getuid?.() === 0 ? 'user root;' : '',
    'worker_processes 1;',
    'daemon off;',
    `pid ${join(prefix, 'nginx.pid')};`,
    'error_log stderr warn;',
    'events { worker_connections 512; }',
    'http {',
    '  access_log off;',
    temp,
    `  add_header X-Test-Upstream $upstream_addr always;`,
    `  include ${join(prefix, 'semantic.conf')};`,
    '}',
    '',
  ].join('\n');
}

/** Resolves once the port accepts a connection; polls every 50 ms, `attempts` times at most. */
async function accepting(port: number, attempts: number): Promise<boolean> {
  for (let i = 0; i < attempts; i++) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1');
      socket.once('connect', () => (socket.destroy(), resolve(true)));
      socket.once('error', () => resolve(false));
    });
    if (ok) return true;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return false;
}

/** Starts nginx in front of the replicas with the shipped config; rejects with its stderr if it does not listen. */
export async function startNginx(prefix: string, replicaPorts: readonly number[]): Promise<RunningProxy> {
  const port = await freePort();
  mkdirSync(prefix, { recursive: true });
  writeFileSync(join(prefix, 'semantic.conf'), shippedConfigFor(replicaPorts, port));
  writeFileSync(join(prefix, 'nginx.conf'), topLevelConfig(prefix));
  const child = spawn(nginxPath(), ['-p', prefix, '-c', join(prefix, 'nginx.conf'), '-e', 'stderr'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
  };
  if (!(await accepting(port, 200)) || child.exitCode !== null) {
    await stop();
    throw new Error(`nginx did not listen on ${port}:\n${stderr}`);
  }
  return { url: `http://127.0.0.1:${port}`, child, stop };
}

/** The replica that answered, as its port, from the test's upstream header. */
export function answeredBy(headers: Headers): number {
  const last = (headers.get(UPSTREAM_HEADER) ?? '').split(', ').pop() ?? '';
  return Number(/:(\d+)$/.exec(last)?.[1] ?? 0);
}
