/**
 * Soak: `semantic supervise --workers 2` on the tiny generated model, with memory budgets small
 * enough that agents move between the hot (context), RAM and disk tiers, under steady mixed traffic
 * (bench/soak-traffic.ts) for `--minutes`, with a rolling restart (SIGHUP) every `--restart-every`
 * minutes and a burst over `--max-queued` every `--burst-every` seconds. Samples every process's RSS
 * and open fds and the cache dir's bytes (bench/soak-sampler.ts), then prints the goals and tables
 * and writes everything, every sample included, as JSON (docs/reliability.md, "Soak", reads it).
 * `--report FILE` judges a JSON report again (with today's goals and any `--…-seconds` given) without a run.
 *
 *   npm run soak -- --minutes 60 [--restart-every 5] [--burst-every 60] [--clients 4] [--rate 400] [--warmup-seconds 60] [--fleet-warmup-seconds 300] [--window-seconds 60] [--sample-seconds 5] [--out soak.json]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { ensureModel } from '../shared/gguf/make-model.js';
import { cliPath } from '../test/helpers/server.js';
import { takeSample, summarise, type Sample } from './soak-sampler.js';
import { fleetRssTrend } from './soak-trend.js';
import { SoakTraffic } from './soak-traffic.js';
import { formatReport, goalsOf, type SoakReport, type SoakSettings } from './soak-report.js';

const { values } = parseArgs({
  options: {
    minutes: { type: 'string', default: '60' },
    'restart-every': { type: 'string', default: '5' },
    'burst-every': { type: 'string', default: '60' },
    clients: { type: 'string', default: '4' },
    /** Requests a minute from all clients together (bursts aside): a steady offered load, so memory figures do not follow a busy neighbour; 0: each client sends back to back. */
    rate: { type: 'string', default: '400' },
    'warmup-seconds': { type: 'string', default: '60' },
    'fleet-warmup-seconds': { type: 'string', default: '300' },
    'window-seconds': { type: 'string', default: '60' },
    'sample-seconds': { type: 'string', default: '5' },
    out: { type: 'string' },
    report: { type: 'string' },
  },
});

function positive(name: string, text: string | undefined): number {
  const value = Number(text);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`--${name} must be a positive number (fractions allowed); got ${text}`);
  return value;
}

function nonNegative(name: string, text: string | undefined): number {
  const value = Number(text);
  if (!Number.isFinite(value) || value < 0) throw new Error(`--${name} must be 0 or more; got ${text}`);
  return value;
}

const MiB = 1024 * 1024;
/** Small budgets, so a few dozen agents overflow a worker's RAM tier and a few hundred the disk tier. */
const budgets = { contextCells: 2048, sequences: 4, ramBytes: 1 * MiB, diskBytes: 8 * MiB, maxQueued: 8, workers: 2 };

function serverArgs(model: string, cacheDir: string): string[] {
  return [
    'supervise',
    '--workers',
    String(budgets.workers),
    '--port',
    '0',
    '--model',
    model,
    '--model-id',
    'tiny',
    '--threads',
    '1',
    '--context-size',
    String(budgets.contextCells),
    '--max-sequences',
    String(budgets.sequences),
    '--idle-agents',
    'keep',
    '--ram-cache-bytes',
    String(budgets.ramBytes),
    '--disk-cache-bytes',
    String(budgets.diskBytes),
    '--max-queued',
    String(budgets.maxQueued),
    '--drain-timeout',
    '60',
    '--cache-dir',
    cacheDir,
  ];
}

interface Supervised {
  child: ChildProcess;
  port: Promise<number>;
  restartsDone(): number;
  /** Resolves once `count` rolling restarts are done, or after `ms`. */
  waitForRestarts(count: number, ms: number): Promise<void>;
  exited: Promise<number | null>;
}

/** Starts the supervisor, keeping only the few log lines the soak needs (a long run logs a line per request). */
function supervise(args: string[]): Supervised {
  const child = spawn(process.execPath, [cliPath, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  let done = 0;
  const waiters = new Set<() => void>();
  let onPort!: (port: number) => void;
  const port = new Promise<number>((resolve) => (onPort = resolve));
  createInterface({ input: child.stdout! }).on('line', (line) => {
    if (!line.includes('"all workers ready"') && !line.includes('"rolling restart done"')) return;
    const entry = JSON.parse(line) as { msg: string; port?: number };
    if (entry.msg === 'all workers ready' && entry.port !== undefined) onPort(entry.port);
    if (entry.msg === 'rolling restart done') done++;
    waiters.forEach((wake) => wake());
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const waitForRestarts = (count: number, ms: number): Promise<void> =>
    new Promise((resolve) => {
      const timer = setTimeout(finish, ms);
      function finish(): void {
        clearTimeout(timer);
        waiters.delete(check);
        resolve();
      }
      function check(): void {
        if (done >= count) finish();
      }
      waiters.add(check);
      check();
    });
  return { child, port, restartsDone: () => done, waitForRestarts, exited };
}

async function soak(settings: SoakSettings, cacheDir: string): Promise<SoakReport> {
  const server = supervise(settings.serverArgs);
  process.once('exit', () => server.child.kill('SIGKILL'));
  const port = await Promise.race([server.port, server.exited.then((code) => Promise.reject(new Error(`supervisor exited with ${code} before ready`)))]);
  const startedAt = Date.now();
  const seconds = (): number => Math.round((Date.now() - startedAt) / 1000);
  const traffic = new SoakTraffic(`http://127.0.0.1:${port}`, startedAt, startedAt.toString(36));
  const sample = (): Sample => ({ ...takeSample(server.child.pid!, cacheDir, seconds()), answered: traffic.answered() });
  const samples: Sample[] = [sample()];
  const bursts: Promise<void>[] = [];
  const restarts = { requested: 0, skipped: 0 };
  const restart = (): void => {
    if (server.restartsDone() < restarts.requested) return void restarts.skipped++;
    restarts.requested++;
    server.child.kill('SIGHUP');
  };
  const timers = [
    setInterval(() => samples.push(sample()), settings.sampleSeconds * 1000),
    setInterval(restart, settings.restartEveryMinutes * 60_000),
    setInterval(() => bursts.push(traffic.burst(settings.burstSize)), settings.burstEverySeconds * 1000),
    setInterval(() => console.log(`${seconds()} s: ${JSON.stringify(traffic.tally.byKind)}`), 60_000),
  ];
  const endAt = startedAt + settings.minutes * 60_000;
  const intervalMs = settings.ratePerMinute > 0 ? (settings.concurrency * 60_000) / settings.ratePerMinute : 0;
  await Promise.all(Array.from({ length: settings.concurrency }, () => traffic.client(() => Date.now() < endAt, intervalMs)));
  timers.forEach(clearInterval);
  await Promise.all(bursts);
  await server.waitForRestarts(restarts.requested, 120_000);
  samples.push(sample());
  traffic.close();
  server.child.kill('SIGTERM');
  const supervisorExitCode = await server.exited;
  // --disk-cache-bytes is a budget per server process (shared/config.ts), and the workers share the dir.
  const cacheBytes = samples.filter((s) => s.atSeconds >= settings.warmupSeconds).map((s) => s.cacheBytes);
  const run = {
    settings,
    traffic: traffic.tally,
    restarts: { ...restarts, done: server.restartsDone() },
    supervisorExitCode,
    cacheDir: {
      warmBytes: cacheBytes[0] ?? 0,
      lastBytes: samples.at(-1)!.cacheBytes,
      maxBytes: Math.max(...samples.map((s) => s.cacheBytes)),
      budgetBytes: budgets.workers * budgets.diskBytes,
    },
    samples,
  };
  return judge(run);
}

/** The per-process summaries, the fleet's trend and the goals, from what a run recorded. */
function judge(run: Omit<SoakReport, 'goals' | 'processes' | 'fleetTrend'>): SoakReport {
  const { samples, settings } = run;
  const partial = {
    ...run,
    processes: summarise(samples, settings.warmupSeconds, settings.windowSeconds),
    fleetTrend: fleetRssTrend(samples, budgets.workers, settings.fleetWarmupSeconds),
  };
  return { ...partial, goals: goalsOf(partial) };
}

function settingsFromArgs(serverArgs: string[]): SoakSettings {
  return {
    minutes: positive('minutes', values.minutes),
    restartEveryMinutes: positive('restart-every', values['restart-every']),
    burstEverySeconds: positive('burst-every', values['burst-every']),
    warmupSeconds: positive('warmup-seconds', values['warmup-seconds']),
    fleetWarmupSeconds: positive('fleet-warmup-seconds', values['fleet-warmup-seconds']),
    windowSeconds: positive('window-seconds', values['window-seconds']),
    sampleSeconds: positive('sample-seconds', values['sample-seconds']),
    concurrency: Math.round(positive('clients', values.clients)),
    ratePerMinute: nonNegative('rate', values.rate),
    /** More than the workers can run and queue together, so the surplus must get 429 at once. */
    burstSize: budgets.maxQueued + budgets.workers * budgets.sequences + 8,
    serverArgs,
  };
}

/** A recorded run judged again: its own settings, with the warm-ups and window given on this command line. */
function rejudge(path: string): SoakReport {
  const recorded = JSON.parse(readFileSync(path, 'utf8')) as SoakReport;
  const given = settingsFromArgs(recorded.settings.serverArgs);
  const settings = { ...recorded.settings, warmupSeconds: given.warmupSeconds, fleetWarmupSeconds: given.fleetWarmupSeconds, windowSeconds: given.windowSeconds };
  return judge({ ...recorded, settings });
}

async function runSoak(): Promise<{ report: SoakReport; out: string }> {
  const cacheDir = mkdtempSync(join(tmpdir(), 'semantic-soak-cache-'));
  const settings = settingsFromArgs(serverArgs(await ensureModel('tiny'), cacheDir));
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(130));
  const report = await soak(settings, cacheDir);
  const out = values.out ?? join(tmpdir(), `semantic-soak-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(out, JSON.stringify(report, null, 2));
  return { report, out };
}

const { report, out } = values.report === undefined ? await runSoak() : { report: rejudge(values.report), out: undefined };
console.log(formatReport(report));
if (out !== undefined) console.log(`\nJSON report: ${out}`);
process.exitCode = report.goals.every((goal) => goal.met) ? 0 : 1;
