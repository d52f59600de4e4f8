// `semantic supervise` with the tiny generated model: N workers really share one port, a killed worker
// is replaced, SIGTERM stops everything with exit 0, and workers never outlive a killed supervisor.
// Every wait is on a log line or on the shared stdout pipe closing (all writers gone), never a sleep.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import { startServer, type RunningServer } from '../helpers/server.js';
import { tinyModelPath } from '../helpers/model.js';

type LogLine = Record<string, unknown>;

/** Resolves with the first log line (already printed or still to come) that matches. */
function waitForLog(server: RunningServer, matches: (line: LogLine) => boolean): Promise<LogLine> {
  const found = server.logs.find(matches);
  if (found !== undefined) return Promise.resolve(found);
  return new Promise((resolve, reject) => {
    const stdout = server.child.stdout!;
    const onData = (): void => {
      const line = server.logs.find(matches);
      if (line === undefined) return;
      stdout.off('data', onData);
      resolve(line);
    };
    stdout.on('data', onData);
    stdout.once('close', () => reject(new Error('stdout closed before the expected log line')));
  });
}

/** The supervisor's stdout is shared with its workers: it closes only when every one of them exited. */
function allWritersGone(server: RunningServer): Promise<void> {
  const stdout = server.child.stdout!;
  if (stdout.closed) return Promise.resolve();
  return new Promise((resolve) => stdout.once('close', () => resolve()));
}

/** One request on a fresh connection, so the kernel picks a listener anew each time. */
function getLive(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/health/live', agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end();
  });
}

function workerPids(server: RunningServer): number[] {
  return server.logs.filter((line) => line.msg === 'worker ready').map((line) => line.pid as number);
}

/** A zombie counts as gone: orphans are reparented to a pid 1 that may never reap them here. */
function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const state = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.[0];
    return state !== 'Z';
  } catch {
    return true;
  }
}

const args = (): Promise<string[]> => tinyModelPath().then((model) => ['supervise', '--workers', '2', '--port', '0', '--model', model, '--context-size', '1024', '--threads', '1']);

t.test('two workers share one port and both accept connections', async (t) => {
  const server = await startServer(await args(), 'all workers ready');
  t.teardown(() => server.stop('SIGKILL'));
  t.match(server.logs.find((line) => line.msg === 'all workers ready'), { workers: 2, role: 'supervisor', port: server.port });
  const pids = workerPids(server);
  t.equal(new Set(pids).size, 2, 'two distinct worker processes are ready');
  const listening = server.logs.filter((line) => line.msg === 'listening' && line.role === 'worker');
  t.same(listening.map((line) => line.port), [server.port, server.port], 'both bound the supervisor-chosen port');

  const statuses = await Promise.all(Array.from({ length: 40 }, () => getLive(server.port)));
  t.ok(statuses.every((status) => status === 200));
  const served = new Set(server.logs.filter((line) => line.route === '/health/live').map((line) => line.pid));
  t.same([...served].sort(), [...pids].sort(), 'over 40 fresh connections, each worker served some (SO_REUSEPORT)');

  t.equal(await server.stop('SIGTERM'), 0, 'SIGTERM: the supervisor exits 0');
  await allWritersGone(server);
  t.same(pids.filter(isAlive), [], 'and no worker is left');
});

t.test('a worker that dies is restarted on the same port', async (t) => {
  const server = await startServer(await args(), 'all workers ready');
  t.teardown(() => server.stop('SIGKILL'));
  const [victim, survivor] = workerPids(server) as [number, number];
  process.kill(victim, 'SIGKILL');
  const exit = await waitForLog(server, (line) => line.msg === 'worker exited unexpectedly');
  t.match(exit, { pid: victim, signal: 'SIGKILL' });
  const replacement = await waitForLog(server, (line) => line.msg === 'worker ready' && line.pid !== victim && line.pid !== survivor);
  t.ok(isAlive(replacement.pid as number), 'a new worker took the slot');
  await waitForLog(server, (line) => line.msg === 'all workers ready' && server.logs.indexOf(line) > server.logs.indexOf(replacement));
  t.equal(await getLive(server.port), 200);
  t.equal(await server.stop('SIGTERM'), 0);
});

t.test('workers exit by themselves when the supervisor is killed (no orphans)', async (t) => {
  const server = await startServer(await args(), 'all workers ready');
  const pids = workerPids(server);
  t.teardown(() => pids.filter(isAlive).forEach((pid) => process.kill(pid, 'SIGKILL')));
  await server.stop('SIGKILL');
  await allWritersGone(server);
  t.same(pids.filter(isAlive), [], 'every worker exited');
  const gone = server.logs.filter((line) => line.msg === 'stopped' && line.reason === 'supervisor gone');
  t.equal(gone.length, 2, 'each worker saw the IPC channel close and stopped');
});
