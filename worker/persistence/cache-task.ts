/**
 * The piscina task that does agents' cache file I/O off the inference thread: writes are atomic
 * (temp file, fsync, rename) and reads verify the file completely; a file that fails verification
 * is moved into `quarantine/` so it is never read again, and reported as a miss.
 */
import { mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { CacheFileError, decodeCacheFile, encodeCacheFile, type CacheMetadata } from './cache-file.js';

export interface WriteTask extends CacheMetadata {
  op: 'write';
  path: string;
  tokens: Int32Array;
  state: Uint8Array;
}

export interface ReadTask extends CacheMetadata {
  op: 'read';
  path: string;
}

export type ReadResult = { tokens: Int32Array; state: Uint8Array } | { missing: true } | { quarantined: CacheFileError['reason'] };

async function write(task: WriteTask): Promise<number> {
  const temp = `${task.path}.${process.pid}.${Date.now()}.tmp`;
  const file = await open(temp, 'w');
  try {
    let bytes = 0;
    for (const part of encodeCacheFile(task)) {
      await file.write(part);
      bytes += part.length;
    }
    await file.sync();
    await file.close();
    await rename(temp, task.path);
    return bytes;
  } catch (error) {
    await file.close().catch(() => undefined);
    await rm(temp, { force: true });
    throw error;
  }
}

async function read(task: ReadTask): Promise<ReadResult> {
  let bytes: Buffer;
  try {
    bytes = await readFile(task.path);
  } catch {
    return { missing: true };
  }
  try {
    const contents = decodeCacheFile(bytes, task);
    return { tokens: contents.tokens, state: contents.state };
  } catch (error) {
    if (!(error instanceof CacheFileError)) throw error;
    const quarantine = join(task.path, '..', 'quarantine');
    await mkdir(quarantine, { recursive: true });
    await rename(task.path, join(quarantine, `${basename(task.path)}.${Date.now()}`)).catch(() => undefined);
    return { quarantined: error.reason };
  }
}

export default async function run(task: WriteTask | ReadTask): Promise<number | ReadResult> {
  return task.op === 'write' ? write(task) : read(task);
}
