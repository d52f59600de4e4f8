/**
 * The soak's verdict: the goals (no failed request, the workers' RSS trend after warm-up under 5 %,
 * file descriptors and cache-dir bytes stable), a table per process, the cache dir over time and the
 * traffic, as text for the terminal and as JSON for the record.
 */
import type { Sample, ProcessSummary } from './soak-sampler.js';
import { median } from './stats.js';
import type { FleetTrend } from './soak-trend.js';
import type { TrafficTally } from './soak-traffic.js';

export interface SoakSettings {
  minutes: number;
  restartEveryMinutes: number;
  burstEverySeconds: number;
  warmupSeconds: number;
  /** Where the fleet's RSS trend starts (soak-trend.ts): the cache dir full, a rolling restart behind. */
  fleetWarmupSeconds: number;
  /** Length of the windows whose RSS medians the growth compares (soak-sampler.ts says why). */
  windowSeconds: number;
  sampleSeconds: number;
  concurrency: number;
  /**
   * Requests a minute the clients send together (0: back to back, as fast as the server answers).
   * A fixed rate keeps the allocation rate, and so the heaps' high-water mark, the same however busy
   * the machine is; back to back, RSS follows the machine's spare CPU.
   */
  ratePerMinute: number;
  burstSize: number;
  serverArgs: string[];
}

export interface SoakReport {
  settings: SoakSettings;
  goals: { name: string; met: boolean; detail: string }[];
  processes: ProcessSummary[];
  /** The workers' summed RSS over the run after the fleet's warm-up; undefined when too few samples. */
  fleetTrend: FleetTrend | undefined;
  traffic: TrafficTally;
  /** Requested: SIGHUPs sent; skipped: periods when the last restart had not finished yet (none sent). */
  restarts: { requested: number; done: number; skipped: number };
  supervisorExitCode: number | null;
  cacheDir: { warmBytes: number; lastBytes: number; maxBytes: number; budgetBytes: number };
  samples: Sample[];
}

export const rssGrowthGoalPercent = 5;
/**
 * Descriptors a process may hold beyond its warm count at its last sample: every open connection is
 * one, and the clients' keep-alive sockets and a whole burst may all be open then (a worker's last
 * sample is often taken while it drains). A leak grows past any such constant over a long run.
 */
export function fdSlack(settings: SoakSettings): number {
  return settings.concurrency + settings.burstSize + 8;
}

const MiB = 1024 * 1024;
const mib = (bytes: number): string => (bytes / MiB).toFixed(1);

export function goalsOf(report: Omit<SoakReport, 'goals'>): SoakReport['goals'] {
  const failed = Object.values(report.traffic.byKind).reduce((sum, counts) => sum + counts.failed, 0);
  const lives = report.processes.filter((process) => process.role === 'worker' && process.rssGrowthPercent !== undefined);
  const slack = fdSlack(report.settings);
  const leaking = report.processes.filter((process) => process.warm !== undefined && process.last.fds > process.warm.fds + slack);
  const provoked = Object.values(report.traffic.byKind).reduce((sum, counts) => sum + counts.provoked429, 0);
  return [
    { name: 'no failed request', met: failed === 0, detail: `${failed} failed` },
    {
      name: `workers' RSS trend after warm-up < ${rssGrowthGoalPercent} %`,
      met: report.fleetTrend !== undefined && report.fleetTrend.growthPercent < rssGrowthGoalPercent,
      detail: `${trendDetail(report.fleetTrend)}; per worker life: ${livesDetail(lives)}`,
    },
    {
      name: `open fds stable (end ≤ warm + ${slack})`,
      met: leaking.length === 0,
      detail: leaking.length === 0 ? 'all stable' : `grew: ${leaking.map((p) => `${p.role} ${p.pid} ${p.warm!.fds} → ${p.last.fds}`).join(', ')}`,
    },
    {
      name: "cache dir within the workers' disk budgets",
      met: report.cacheDir.maxBytes <= report.cacheDir.budgetBytes,
      detail: `max ${mib(report.cacheDir.maxBytes)} MiB of ${mib(report.cacheDir.budgetBytes)} MiB`,
    },
    {
      name: 'rolling restarts completed',
      met: report.restarts.done === report.restarts.requested,
      detail: `${report.restarts.done} of ${report.restarts.requested} (${report.restarts.skipped} skipped: the one before still ran)`,
    },
    { name: '429s provoked on purpose', met: provoked > 0 || report.traffic.bursts === 0, detail: `${provoked} in ${report.traffic.bursts} bursts` },
  ];
}

function rateText(ratePerMinute: number | undefined): string {
  return ratePerMinute === undefined || ratePerMinute === 0 ? ' back to back' : ` at ${ratePerMinute} requests a minute`;
}

function trendDetail(trend: FleetTrend | undefined): string {
  if (trend === undefined) return 'too few samples after the warm-up';
  const sign = trend.growthPercent >= 0 ? '+' : '';
  return `${sign}${trend.growthPercent.toFixed(1)} % (a line through ${trend.samples} samples, ${trend.fromSeconds}-${trend.toSeconds} s: ${mib(trend.startBytes)} → ${mib(trend.endBytes)} MiB)`;
}

/** Each life's growth is its fresh process's climb as much as any leak (soak-trend.ts says why), so it is reported, not judged. */
function livesDetail(lives: readonly ProcessSummary[]): string {
  if (lives.length === 0) return 'none lived past its warm-up';
  const growths = lives.map((life) => life.rssGrowthPercent!);
  return `median ${median(growths).toFixed(1)} %, worst ${Math.max(...growths).toFixed(1)} % over ${lives.length}`;
}

function table(header: string[], rows: string[][]): string {
  const widths = header.map((title, i) => Math.max(title.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: string[]): string => cells.map((cell, i) => cell.padStart(widths[i]!)).join('  ');
  return [line(header), line(widths.map((width) => '-'.repeat(width))), ...rows.map(line)].join('\n');
}

function processTable(processes: readonly ProcessSummary[]): string {
  const rows = processes.map((p) => [
    p.role,
    String(p.pid),
    `${p.firstSeconds}-${p.lastSeconds}`,
    p.warmRssMedianBytes === undefined ? '-' : mib(p.warmRssMedianBytes),
    p.endRssMedianBytes === undefined ? '-' : mib(p.endRssMedianBytes),
    mib(p.maxRssBytes),
    p.rssGrowthPercent === undefined ? '-' : p.rssGrowthPercent.toFixed(1),
    p.warm === undefined ? '-' : String(p.warm.fds),
    String(p.last.fds),
    String(p.maxFds),
  ]);
  return table(['process', 'pid', 'seen (s)', 'RSS warm MiB*', 'RSS end MiB*', 'RSS max MiB', 'growth %', 'fds warm', 'fds end', 'fds max'], rows);
}

/** The cache dir, the workers' RSS and the load (200s a minute since the row before) at about ten points of the run. */
function timeline(samples: readonly Sample[]): string {
  const step = Math.max(1, Math.floor(samples.length / 10));
  const picked = samples.filter((_, i) => i % step === 0 || i === samples.length - 1);
  const rows = picked.map((s, i) => [
    String(s.atSeconds),
    s.workers.map((w) => `${w.pid}:${mib(w.rssBytes)}`).join(' '),
    s.workers.map((w) => String(w.fds)).join(' '),
    mib(s.cacheBytes),
    String(s.cacheFiles),
    perMinute(picked[i - 1], s),
  ]);
  return table(['t (s)', 'workers pid:RSS MiB', 'worker fds', 'cache MiB', 'cache files', '200s/min'], rows);
}

function perMinute(before: Sample | undefined, now: Sample): string {
  if (before?.answered === undefined || now.answered === undefined || now.atSeconds === before.atSeconds) return '-';
  return String(Math.round(((now.answered - before.answered) * 60) / (now.atSeconds - before.atSeconds)));
}

export function formatReport(report: SoakReport): string {
  const kinds = Object.entries(report.traffic.byKind).map(([kind, c]) => [kind, String(c.ok), String(c.failed), String(c.provoked429)]);
  const tiers = Object.entries(report.traffic.tiers)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([tier, count]) => `${tier} ${count}`)
    .join(', ');
  return [
    `Soak: ${report.settings.minutes} min, rolling restart every ${report.settings.restartEveryMinutes} min, burst every ${report.settings.burstEverySeconds} s, ${report.settings.concurrency} clients${rateText(report.settings.ratePerMinute)}`,
    '',
    'Goals:',
    ...report.goals.map((goal) => `  [${goal.met ? 'met' : 'MISSED'}] ${goal.name}: ${goal.detail}`),
    '',
    processTable(report.processes),
    `* RSS warm: the median over the ${report.settings.windowSeconds} s after a process's ${report.settings.warmupSeconds} s warm-up; RSS end: the median over its last ${report.settings.windowSeconds} s; growth compares the two.`,
    '',
    timeline(report.samples),
    '',
    table(['requests', 'ok', 'failed', '429 provoked'], kinds),
    `cache tiers of the 200s: ${tiers}`,
    `supervisor exit code after SIGTERM: ${report.supervisorExitCode}`,
    ...(report.traffic.failures.length === 0 ? [] : ['failures (first ones):', ...report.traffic.failures.map((f) => `  at ${f.atSeconds} s ${f.kind}: ${f.what}`)]),
  ].join('\n');
}
