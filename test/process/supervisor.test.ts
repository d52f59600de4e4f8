// `semantic supervise` with the tiny generated model: N workers really share one port, a killed worker
// is replaced, a worker that cannot start is a crash loop, SIGTERM stops everything with exit 0, and
// workers never outlive a killed supervisor. Then the Supervisor class over fake workers (a script that
// speaks the IPC protocol) for what real workers make slow or hard to provoke: rolling restarts, a
// replacement that fails, drains cut by a second signal.
// Every wait is on a log line or on the shared stdout pipe closing (all writers gone), never a sleep.
import t, { type Test } from 'tap';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { loadConfig } from '../../shared/config.js';
import { createLogger } from '../../shared/logger.js';
import { IPC_VERSION, workerConfigEnv } from '../../shared/protocol/ipc.js';
import { defaultRestartPolicy, restartBaseDelayEnv, type RestartPolicy } from '../../supervisor/restart-policy.js';
import { Supervisor } from '../../supervisor/supervisor.js';
import { cliPath, logged, startServer, type RunningServer } from '../helpers/server.js';
import { tinyModelPath } from '../helpers/model.js';
import { sendRaw } from '../helpers/raw-http.js';

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

const args = (): Promise<string[]> =>
  tinyModelPath().then((model) => ['supervise', '--workers', '2', '--port', '0', '--model', model, '--context-size', '1024', '--threads', '1', '--headers-timeout', '1']);

t.test('two workers share one port and both accept connections', async (t) => {
  const server = await startServer(await args(), 'all workers ready');
  t.teardown(() => server.stop('SIGKILL'));
  t.match(
    server.logs.find((line) => line.msg === 'all workers ready'),
    { workers: 2, role: 'supervisor', port: server.port },
  );
  const pids = workerPids(server);
  t.equal(new Set(pids).size, 2, 'two distinct worker processes are ready');
  const listening = server.logs.filter((line) => line.msg === 'listening');
  t.same(
    listening.map((line) => [line.role, line.port, line.from]),
    [
      ['supervisor', server.port, undefined],
      ['worker', server.port, 'supervisor'],
      ['worker', server.port, 'supervisor'],
    ],
    'the supervisor binds the port; both workers serve connections it hands over',
  );

  const statuses = await Promise.all(Array.from({ length: 40 }, () => getLive(server.port)));
  t.ok(statuses.every((status) => status === 200));
  // A worker logs a request once its response is sent: the lines may reach us after the responses do.
  await logged(server, (line) => line.route === '/health/live', 40);
  const served = new Set(server.logs.filter((line) => line.route === '/health/live').map((line) => line.pid));
  t.same([...served].sort(), [...pids].sort(), 'over 40 fresh connections, each worker served some (handed over in turn)');
  // A handed-over connection keeps the front's time limits: headers that never end get 408, then a close.
  const stalled = await sendRaw(server.port, ['GET /health/live HTTP/1.1\r\nHost: x\r\n']);
  t.equal(stalled.responses[0]?.status, 408, 'a supervised worker holds a stalled client to --headers-timeout');
  t.match(JSON.parse(stalled.responses[0]?.body ?? '{}'), { error: { code: 'ERR_REQUEST_TIMEOUT' } });
  t.ok(stalled.closed);

  t.equal(await server.stop('SIGTERM'), 0, 'SIGTERM: the supervisor exits 0');
  await allWritersGone(server);
  t.same(pids.filter(isAlive), [], 'and no worker is left');
});

t.test('a worker that dies is restarted on the same port', async (t) => {
  const server = await startServer(await args(), 'all workers ready');
  t.teardown(() => server.stop('SIGKILL'));
  const [victim, survivor] = workerPids(server) as [number, number];
  const slot = server.logs.find((line) => line.msg === 'worker ready' && line.pid === victim)?.worker;
  process.kill(victim, 'SIGKILL');
  const exit = await waitForLog(server, (line) => line.msg === 'worker exited unexpectedly');
  t.match(exit, { pid: victim, signal: 'SIGKILL', worker: slot });
  t.match(await waitForLog(server, (line) => line.msg === 'restarting worker'), { worker: slot, delayMs: 1000, exits: 1 }, 'the first exit waits the base delay');
  const replacement = await waitForLog(server, (line) => line.msg === 'worker ready' && line.pid !== victim && line.pid !== survivor);
  t.equal(replacement.worker, slot, 'a new worker took the slot');
  t.ok(isAlive(replacement.pid as number));
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

/** Runs `semantic <args>` to its end: its exit code and every JSON line it and its workers printed. */
function runToExit(cliArgs: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; logs: LogLine[] }> {
  const child = spawn(process.execPath, [cliPath, ...cliArgs], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'ignore'] });
  const logs: LogLine[] = [];
  createInterface({ input: child.stdout! }).on('line', (line) => {
    if (line.startsWith('{')) logs.push(JSON.parse(line) as LogLine);
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return new Promise((resolve) => child.stdout!.once('close', () => void exited.then((code) => resolve({ code, logs }))));
}

t.test('a worker that can never start is a crash loop: reported, and with no worker left the supervisor exits 1', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'semantic-crash-loop-'));
  const model = join(dir, 'not-a-model.gguf');
  writeFileSync(model, 'not a GGUF file: the supervisor only checks that it exists, every worker fails to load it\n');
  const cliArgs = ['supervise', '--workers', '2', '--port', '0', '--model', model, '--threads', '1', '--cache-dir', dir];
  const { code, logs } = await runToExit(cliArgs, { [restartBaseDelayEnv]: '20' });
  t.equal(code, 1);
  const loops = logs.filter((line) => line.msg === 'crash loop: worker not restarted');
  t.same(loops.map((line) => line.worker).sort(), [0, 1], 'each slot gave up once');
  t.match(loops[0], { role: 'supervisor', exits: 5, reason: '5 failed starts in a row (never ready)' });
  const delays = logs.filter((line) => line.msg === 'restarting worker' && line.worker === 0).map((line) => line.delayMs);
  t.same(delays, [20, 40, 80, 160], 'backoff from the base delay the env set');
  t.match(
    logs.find((line) => line.msg === 'no worker left: every worker is in a crash loop'),
    { role: 'supervisor', workers: 2 },
  );
});

// ---- the Supervisor class over fake workers ----

/**
 * A worker that speaks the IPC protocol and nothing else. Its behaviour is the word in the control
 * file when it starts: serve (ready; drains at once), fail (exits 1 before ready), hang (never ready),
 * stuck (a drain ends only at SIGTERM, exit 3), deaf (ignores SIGTERM too). A fleet scrape gets no metrics
 * from it (an empty report), so the supervisor's own series stand alone. It appends "pid mode" to
 * `<control>.drains` for each drain it is asked for, and its log file (config logFile) to `<control>.logfiles`.
 */
const fakeWorkerSource = `
import { appendFileSync, readFileSync } from 'node:fs';
const control = process.argv[2];
const mode = readFileSync(control, 'utf8').trim();
const { port, logFile } = JSON.parse(process.env.${workerConfigEnv});
appendFileSync(control + '.logfiles', (logFile ?? 'none') + '\\n');
const send = (message, done) => process.send([${IPC_VERSION}, message], done);
const exit = (code, cut) => send({ type: 'stopped', code, cut }, () => process.exit(code));
process.on('disconnect', () => process.exit(0));
process.on('SIGTERM', () => mode !== 'deaf' && exit(3, 1));
process.on('message', ([, message]) => {
  if (message.type === 'collect_metrics') return send({ type: 'metrics_report', id: message.id, metrics: [] });
  appendFileSync(control + '.drains', process.pid + ' ' + message.mode + '\\n');
  send({ type: 'draining' });
  if (mode === 'serve' || mode === 'hang') exit(0, 0);
});
send({ type: 'listening', port });
if (mode === 'fail') process.exit(1);
if (mode !== 'hang') send({ type: 'ready', port, model: 'fake' });
`;

interface FakeSupervisor {
  supervisor: Supervisor;
  logs: LogLine[];
  /** Resolves with the lines logged so far once `count` of them match. */
  waitForLogs(matches: (line: LogLine) => boolean, count?: number): Promise<LogLine[]>;
  setMode(mode: string): void;
  /** "pid mode" for each drain the fake workers were asked for. */
  drains(): string[];
  /** The log file each fake worker was given, in the order they started. */
  logFiles(): string[];
}

async function startFakeSupervisor(
  t: Test,
  mode: string,
  options: { replacementReadyTimeoutMs?: number; killAfterForceMs?: number; restartPolicy?: RestartPolicy } = {},
  logFile?: string,
): Promise<FakeSupervisor> {
  const dir = mkdtempSync(join(tmpdir(), 'semantic-fake-workers-'));
  const script = join(dir, 'fake-worker.mjs');
  const control = join(dir, 'mode');
  writeFileSync(script, fakeWorkerSource);
  const setMode = (next: string): void => writeFileSync(control, next);
  setMode(mode);
  const logs: LogLine[] = [];
  const onLine = new Set<() => void>();
  const logger = createLogger('supervisor', 'info', {
    write: (text: string) => {
      logs.push(JSON.parse(text) as LogLine);
      for (const check of [...onLine]) check();
    },
  });
  const workerConfig = loadConfig({ flags: { port: 0, ...(logFile === undefined ? {} : { logFile }) } });
  const supervisor = new Supervisor({ workers: 2, workerConfig, logger, workerScript: script, workerArgs: [control], ...options });
  t.teardown(() => supervisor.force('test over'));
  const waitForLogs = (matches: (line: LogLine) => boolean, count = 1): Promise<LogLine[]> =>
    new Promise((resolve) => {
      const check = (): void => {
        if (logs.filter(matches).length < count) return;
        onLine.delete(check);
        resolve([...logs]);
      };
      onLine.add(check);
      check();
    });
  await supervisor.start();
  const drains = (): string[] => readFileSync(`${control}.drains`, 'utf8').trim().split('\n');
  const logFiles = (): string[] => readFileSync(`${control}.logfiles`, 'utf8').trim().split('\n');
  return { supervisor, logs, waitForLogs, setMode, drains, logFiles };
}

/** The supervisor's fleet exposition as `name{labels}` → value (the fake workers report no metrics of their own). */
async function supervisorSeries(supervisor: Supervisor): Promise<Map<string, number>> {
  const { text } = await supervisor.scrapeFleet();
  const series = new Map<string, number>();
  for (const match of text.matchAll(/^(semantic_\w+)(\{[^}]*\})? (\S+)$/gm)) series.set(`${match[1]}${match[2] ?? '{}'}`, Number(match[3]));
  return series;
}

const byMsg =
  (msg: string) =>
  (line: LogLine): boolean =>
    line.msg === msg;
const fake = { timeout: 30_000 };

t.test("log files: each worker writes its slot's own, and a rolling restart's replacement another while its predecessor drains", fake, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'semantic-fake-logs-'));
  const { supervisor, waitForLogs, logFiles } = await startFakeSupervisor(t, 'serve', {}, join(dir, 'semantic.log'));
  await waitForLogs(byMsg('all workers ready'));
  await supervisor.rollingRestart();
  await supervisor.rollingRestart();
  const names = logFiles().map((path) => path.slice(dir.length + 1));
  t.same(names.slice(0, 2).sort(), ['semantic.worker-0.log', 'semantic.worker-1.log'], 'one file name per slot');
  t.same(
    names.slice(2),
    ['semantic.worker-0b.log', 'semantic.worker-1b.log', 'semantic.worker-0.log', 'semantic.worker-1.log'],
    'replacements alternate names, so a slot never has two writers on one file',
  );
});

t.test('rolling restart: each slot gets a ready replacement before its old worker drains in handover mode', fake, async (t) => {
  const { supervisor, logs, waitForLogs, drains } = await startFakeSupervisor(t, 'serve');
  await waitForLogs(byMsg('all workers ready'));
  const old = [0, 1].map((slot) => logs.find((line) => line.msg === 'worker ready' && line.worker === slot)?.pid);
  const rolling = supervisor.rollingRestart();
  await supervisor.rollingRestart();
  t.ok(logs.some(byMsg('rolling restart already running: ignored')), 'a second one while it runs is ignored');
  await rolling;
  const replaced = logs.filter(byMsg('worker replaced'));
  t.same(
    replaced.map((line) => [line.worker, line.oldPid]),
    [
      [0, old[0]],
      [1, old[1]],
    ],
  );
  const fresh = replaced.map((line) => line.newPid);
  t.notOk(fresh.some((pid) => old.includes(pid as number)));
  for (const line of replaced) {
    const newReady = logs.findIndex((l) => l.msg === 'worker ready' && l.pid === line.newPid);
    const oldDrains = logs.findIndex((l) => l.msg === 'worker draining' && l.pid === line.oldPid);
    t.ok(newReady >= 0 && newReady < oldDrains, `worker ${line.worker}: the replacement was ready before the old one drained`);
  }
  t.ok(logs.some(byMsg('rolling restart started')) && logs.some(byMsg('rolling restart done')));
  t.notOk(
    logs.some((line) => line.msg === 'worker exited unexpectedly' || line.msg === 'restarting worker'),
    'handed-over workers are no crash',
  );
  t.equal(await supervisor.stop('SIGTERM'), 0);
  const [first, second, ...atStop] = drains();
  t.same([first, second], [`${old[0]} handover`, `${old[1]} handover`], 'one slot after the other');
  t.same(atStop.sort(), fresh.map((pid) => `${pid} shutdown`).sort(), 'SIGTERM drains the replacements at once');
});

for (const [mode, timeoutMs, reason] of [
  ['fail', 30_000, 'it exited before it was ready'],
  ['hang', 100, 'not ready within 100 ms'],
] as const) {
  t.test(`a replacement that does not become ready (${mode}) is killed; the old worker keeps serving`, fake, async (t) => {
    const { supervisor, logs, waitForLogs, setMode } = await startFakeSupervisor(t, 'serve', { replacementReadyTimeoutMs: timeoutMs });
    await waitForLogs(byMsg('all workers ready'));
    const old = [0, 1].map((slot) => logs.find((line) => line.msg === 'worker ready' && line.worker === slot)?.pid as number);
    setMode(mode);
    await supervisor.rollingRestart();
    const aborted = logs.filter((line) => String(line.msg).startsWith('rolling restart aborted'));
    t.match(aborted, [{ worker: 0, reason, oldPid: old[0] }]);
    t.notOk(logs.some((line) => line.msg === 'worker replaced' || line.msg === 'rolling restart done' || line.msg === 'restarting worker'));
    t.same(old.filter(isAlive), old, 'the old workers still run');
    setMode('serve');
    t.equal(await supervisor.stop('SIGTERM'), 0);
  });
}

t.test('a stop during a rolling restart drains the replacement too', fake, async (t) => {
  const { supervisor, waitForLogs, setMode, drains } = await startFakeSupervisor(t, 'serve');
  await waitForLogs(byMsg('all workers ready'));
  setMode('hang');
  const rolling = supervisor.rollingRestart();
  const logs = await waitForLogs(byMsg('worker started'), 3);
  const replacement = logs.filter(byMsg('worker started'))[2]?.pid;
  t.equal(await supervisor.stop('SIGTERM'), 0);
  await rolling;
  t.ok(drains().includes(`${replacement} shutdown`));
});

t.test('a second signal cuts the drains short: SIGTERM to each worker, exit 3', fake, async (t) => {
  const { supervisor, waitForLogs } = await startFakeSupervisor(t, 'stuck');
  await waitForLogs(byMsg('all workers ready'));
  const stopped = supervisor.stop('SIGTERM');
  await waitForLogs(byMsg('worker draining'), 2);
  supervisor.force('SIGTERM');
  t.equal(await stopped, 3);
  const logs = await waitForLogs(byMsg('worker drained'), 2);
  t.match(logs.filter(byMsg('worker drained')), [
    { code: 3, cut: 1 },
    { code: 3, cut: 1 },
  ]);
  t.notOk(logs.some(byMsg('killing the workers still running')));
  const metrics = await supervisorSeries(supervisor);
  t.equal(metrics.get('semantic_worker_drains_total{mode="shutdown"}'), 2);
  t.equal(metrics.get('semantic_worker_drains_cut_total{mode="shutdown"}'), 2, 'both drains counted as cut');
  t.equal(metrics.get('semantic_worker_drains_cut_total{mode="handover"}'), 0, 'a mode with no cut drain is there at 0');
});

t.test('a slot in a crash loop is counted until a rolling restart gives it a worker again; complete drains are not cut', { timeout: 90_000 }, async (t) => {
  const restartPolicy = { ...defaultRestartPolicy, baseDelayMs: 10 };
  const { supervisor, logs, waitForLogs, setMode } = await startFakeSupervisor(t, 'serve', { restartPolicy });
  await waitForLogs(byMsg('all workers ready'));
  const before = await supervisorSeries(supervisor);
  t.same(
    ['semantic_workers_alive{}', 'semantic_workers_ready{}', 'semantic_workers_crash_looping{}', 'semantic_worker_restarts_total{}'].map((key) => before.get(key)),
    [2, 2, 0, 0],
  );
  setMode('fail');
  process.kill(logs.find((line) => line.msg === 'worker ready' && line.worker === 0)?.pid as number, 'SIGKILL');
  await waitForLogs(byMsg('crash loop: worker not restarted'));
  const looping = await supervisorSeries(supervisor);
  t.equal(looping.get('semantic_workers_crash_looping{}'), 1);
  t.equal(looping.get('semantic_workers_alive{}'), 1);
  t.equal(looping.get('semantic_worker_restarts_total{}'), logs.filter(byMsg('restarting worker')).length, 'one per restart the supervisor logged');
  setMode('serve');
  await supervisor.rollingRestart();
  const revived = await supervisorSeries(supervisor);
  t.equal(revived.get('semantic_workers_crash_looping{}'), 0, 'the rolling restart gave the slot a worker');
  t.equal(revived.get('semantic_workers_ready{}'), 2);
  t.equal(revived.get('semantic_worker_drains_total{mode="handover"}'), 1, "slot 1's old worker handed over; slot 0 had none");
  t.equal(revived.get('semantic_worker_drains_cut_total{mode="handover"}'), 0);
  t.equal(await supervisor.stop('SIGTERM'), 0);
});

t.test('workers that ignore the forced stop are killed after the grace period', fake, async (t) => {
  const { supervisor, waitForLogs } = await startFakeSupervisor(t, 'deaf', { killAfterForceMs: 200 });
  await waitForLogs(byMsg('all workers ready'));
  const stopped = supervisor.stop('SIGTERM');
  await waitForLogs(byMsg('worker draining'), 2);
  supervisor.force('SIGTERM');
  t.equal(await stopped, 3);
  const logs = await waitForLogs(byMsg('worker stopped'), 2);
  t.match(logs.find(byMsg('killing the workers still running')), { reason: 'still running 200 ms after SIGTERM' });
  t.match(logs.filter(byMsg('worker stopped')), [{ signal: 'SIGKILL' }, { signal: 'SIGKILL' }]);
});
