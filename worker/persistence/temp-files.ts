/**
 * The temp files of atomic writes in the cache dir (segment-files.ts writeAtomically), and the sweep
 * at startup that removes the ones a crash left behind: they are outside the disk budget (DiskIndex
 * counts only agents' and segments' files), so without it every kill mid-write leaks disk for good.
 *
 * One cache dir can have several live writers at once: the workers of `semantic supervise`, a worker
 * still draining beside its replacement in a rolling restart, other hosts on shared storage. A temp
 * file being written by any of them must survive a sweep, so each temp file names its writer:
 *
 *   <final name>.<writer host>.<pid>.<12 hex random>.tmp
 *
 * `writer host` is a hash of what makes a pid meaningful: the host name, the boot id and the pid
 * namespace (Linux; elsewhere the host name alone). A sweep removes a temp file when either
 * - it was written from this host, boot and pid namespace, and its pid is not alive (or is our own:
 *   the sweep runs before this process writes anything, so a file under our pid is a dead
 *   predecessor's that got the same pid, as in a restarted container), or
 * - it was not modified for STALE_AFTER_MS, whoever wrote it. A writer touches its temp file with
 *   every write and renames it within seconds to minutes; an hour of silence is a writer that died
 *   on another host, in another container, or before this naming (`<final>.<pid>.<ms>.tmp`). A
 *   writer merely stalled that long loses only that write: its rename fails and the turn is not
 *   persisted, nothing is corrupted.
 * A pid alive here that is not the writer (reused) keeps its file until the age rule takes it.
 */
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, readlinkSync } from 'node:fs';
import { lstat, readdir, rm } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';

export const STALE_AFTER_MS = 60 * 60 * 1000;

/** Names whose temp files the sweep considers: cache files only, so a mistaken cache dir loses nothing else. */
const tempName = /^.+\.safetensors\.(?:([0-9a-f]{12})\.)?(\d+)\.([0-9a-f]{12}|\d+)\.tmp$/;

/** The cache dir's folders that hold written files: the top, segments/, and each swapped-in model's. */
const maxDepth = 3;

function readOrEmpty(read: () => string): string {
  try {
    return read().trim();
  } catch {
    return '';
  }
}

/** This process's pid space: host name, boot and pid namespace, hashed to 12 hex digits. */
export const writerHost: string = createHash('sha256')
  .update(hostname())
  .update('\0' + readOrEmpty(() => readFileSync('/proc/sys/kernel/random/boot_id', 'utf8')))
  .update('\0' + readOrEmpty(() => readlinkSync('/proc/self/ns/pid')))
  .digest('hex')
  .slice(0, 12);

/** Where `finalPath` is written before its rename. */
export function tempPathFor(finalPath: string): string {
  return `${finalPath}.${writerHost}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
}

export interface TempFileFacts {
  name: string;
  mtimeMs: number;
}

export interface SweepContext {
  now: number;
  /** This process's writerHost and pid. */
  host: string;
  pid: number;
  isAlive: (pid: number) => boolean;
}

/** Whether a temp file can no longer be renamed into place by a live writer (see the file comment). */
export function isStaleTemp(file: TempFileFacts, context: SweepContext): boolean {
  const parts = tempName.exec(file.name);
  if (parts === null) return false;
  if (context.now - file.mtimeMs >= STALE_AFTER_MS) return true;
  const [, host, pidText] = parts;
  if (host !== context.host) return false;
  const pid = Number(pidText);
  return pid === context.pid || !context.isAlive(pid);
}

/** Signal 0 checks without signalling; EPERM means alive, under another user. */
export function isPidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export interface SweepReport {
  /** Stale temp files removed, and their bytes. */
  files: number;
  bytes: number;
  /** Temp files left to a writer that may be alive. */
  kept: number;
}

/** Removes the stale temp files under `dir` (a missing dir is an empty one). Call before this process writes there. */
export async function sweepTempFiles(dir: string, context: SweepContext = liveContext()): Promise<SweepReport> {
  const report: SweepReport = { files: 0, bytes: 0, kept: 0 };
  await sweepFolder(dir, context, report, 0);
  return report;
}

function liveContext(): SweepContext {
  return { now: Date.now(), host: writerHost, pid: process.pid, isAlive: isPidAlive };
}

async function sweepFolder(dir: string, context: SweepContext, report: SweepReport, depth: number): Promise<void> {
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
  for (const entry of entries) {
    const path = join(dir, entry.name);
    // Symbolic links are never followed: the sweep stays inside the cache dir.
    if (entry.isDirectory() && depth < maxDepth) await sweepFolder(path, context, report, depth + 1);
    if (!entry.isFile() || !tempName.test(entry.name)) continue;
    const stats = await lstat(path).catch(() => undefined);
    if (stats === undefined) continue; // renamed into place meanwhile
    if (!isStaleTemp({ name: entry.name, mtimeMs: stats.mtimeMs }, context)) {
      report.kept += 1;
      continue;
    }
    const removed = await rm(path).then(
      () => true,
      () => false,
    );
    if (removed) {
      report.files += 1;
      report.bytes += stats.size;
    }
  }
}
