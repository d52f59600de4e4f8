/**
 * What the soak measures over time, read from outside the server as an operator would: each worker's
 * and the supervisor's resident memory (`VmRSS` in /proc/<pid>/status) and open file descriptors
 * (/proc/<pid>/fd), and the bytes under the cache dir. Workers are found as the supervisor's children
 * in /proc, so a rolling restart's replacements are followed without reading any log.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { median } from './stats.js';

export interface ProcessSample {
  pid: number;
  rssBytes: number;
  fds: number;
}

export interface Sample {
  atSeconds: number;
  supervisor: ProcessSample | undefined;
  workers: ProcessSample[];
  cacheBytes: number;
  cacheFiles: number;
  /** Requests answered 200 so far (the soak's tally): the load the memory figures were taken under. */
  answered?: number;
}

/** Pids whose parent is `parent` (from the 4th field of /proc/<pid>/stat, after the command's closing parenthesis). */
export function childPids(parent: number): number[] {
  const children: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === parent) children.push(Number(entry));
    } catch {
      // the process exited between the listing and the read
    }
  }
  return children.sort((a, b) => a - b);
}

/** RSS and open descriptors of a live process; undefined once it has exited. */
export function sampleProcess(pid: number): ProcessSample | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const rssKiB = /^VmRSS:\s+(\d+) kB$/m.exec(status)?.[1];
    if (rssKiB === undefined) return undefined; // a zombie: exited, not yet reaped
    return { pid, rssBytes: Number(rssKiB) * 1024, fds: readdirSync(`/proc/${pid}/fd`).length };
  } catch {
    return undefined;
  }
}

/** Bytes and files under `dir`, every level. */
export function directorySize(dir: string): { bytes: number; files: number } {
  let bytes = 0;
  let files = 0;
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return { bytes, files };
  }
  for (const entry of entries) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) {
      const inner = directorySize(path);
      bytes += inner.bytes;
      files += inner.files;
    } else if (entry.isFile()) {
      try {
        bytes += statSync(path).size;
        files++;
      } catch {
        // deleted (evicted, renamed into place) while we looked
      }
    }
  }
  return { bytes, files };
}

export function takeSample(supervisorPid: number, cacheDir: string, atSeconds: number): Sample {
  const workers = childPids(supervisorPid)
    .map(sampleProcess)
    .filter((sample): sample is ProcessSample => sample !== undefined);
  const cache = directorySize(cacheDir);
  return { atSeconds, supervisor: sampleProcess(supervisorPid), workers, cacheBytes: cache.bytes, cacheFiles: cache.files };
}

/** One process over its life in the soak: its RSS and fds once warmed up, at its last sample, and at most. */
export interface ProcessSummary {
  role: 'supervisor' | 'worker';
  pid: number;
  firstSeconds: number;
  lastSeconds: number;
  /** Undefined when the process did not live past the warm-up and one more sample. */
  warm: ProcessSample | undefined;
  last: ProcessSample;
  /** Median RSS of the window after warm-up and of the life's last window (undefined: too short a life). */
  warmRssMedianBytes: number | undefined;
  endRssMedianBytes: number | undefined;
  maxRssBytes: number;
  maxFds: number;
  /** (end window's median − warm window's median) / warm window's median, in percent. */
  rssGrowthPercent: number | undefined;
}

type Point = { at: number; sample: ProcessSample };

/**
 * Each process's summary. Warm-up counts from a process's own first sample, so a worker started by
 * a rolling restart gets its own warm-up, as the first generation does.
 *
 * Growth compares medians over windows, not two samples: a worker's anonymous memory is a garbage
 * collector's sawtooth (two V8 heaps), and single samples 10 s apart differ by up to 10 % of RSS with no
 * trend at all (measured: 202 → 174 MiB), so a two-sample figure measures where the sawtooth stood.
 */
export function summarise(samples: readonly Sample[], warmupSeconds: number, windowSeconds = 60): ProcessSummary[] {
  const series = new Map<string, { role: ProcessSummary['role']; points: Point[] }>();
  for (const sample of samples) {
    const all = [
      ...(sample.supervisor === undefined ? [] : [{ role: 'supervisor' as const, process: sample.supervisor }]),
      ...sample.workers.map((process) => ({ role: 'worker' as const, process })),
    ];
    for (const { role, process } of all) {
      const key = `${role}:${process.pid}`;
      const entry = series.get(key) ?? { role, points: [] };
      entry.points.push({ at: sample.atSeconds, sample: process });
      series.set(key, entry);
    }
  }
  return [...series.values()].map(({ role, points }) => summariseOne(role, points, warmupSeconds, windowSeconds));
}

/**
 * The warm window (from the warm-up's end, `windowSeconds` long) and the end window (the life's last
 * `windowSeconds`, never reaching back into the warm one): undefined when the life has no sample
 * after the warm window.
 */
function rssWindows(points: readonly Point[], warmAt: number, windowSeconds: number): { warm: number; end: number } | undefined {
  const warmEnd = warmAt + windowSeconds;
  const lastAt = points[points.length - 1]!.at;
  const endStart = Math.max(warmEnd, lastAt - windowSeconds);
  const warm = points.filter((p) => p.at >= warmAt && p.at < warmEnd).map((p) => p.sample.rssBytes);
  const end = points.filter((p) => p.at >= endStart).map((p) => p.sample.rssBytes);
  if (warm.length === 0 || end.length === 0) return undefined;
  return { warm: median(warm), end: median(end) };
}

function summariseOne(role: ProcessSummary['role'], points: Point[], warmupSeconds: number, windowSeconds: number): ProcessSummary {
  const first = points[0]!;
  const last = points[points.length - 1]!;
  const warmIndex = points.findIndex((point) => point.at >= first.at + warmupSeconds);
  const warm = warmIndex >= 0 && warmIndex < points.length - 1 ? points[warmIndex]! : undefined;
  const windows = warm === undefined ? undefined : rssWindows(points, warm.at, windowSeconds);
  return {
    role,
    pid: first.sample.pid,
    firstSeconds: first.at,
    lastSeconds: last.at,
    warm: warm?.sample,
    last: last.sample,
    warmRssMedianBytes: windows?.warm,
    endRssMedianBytes: windows?.end,
    maxRssBytes: Math.max(...points.map((point) => point.sample.rssBytes)),
    maxFds: Math.max(...points.map((point) => point.sample.fds)),
    rssGrowthPercent: windows === undefined ? undefined : ((windows.end - windows.warm) / windows.warm) * 100,
  };
}
