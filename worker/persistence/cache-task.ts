/**
 * The piscina task that does agents' cache file I/O off the inference thread: writes are atomic
 * (temp file, fsync, rename) and reads verify the file completely; a file that fails verification
 * is moved into `quarantine/` so it is never read again, and reported as a miss.
 */
import { readFileSync } from 'node:fs';
import { mkdir, open, rename, rm } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { Piscina } from 'piscina';
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

/** The verified file's bytes, or why there are none. */
export type ReadResult = ArrayBuffer | { missing: true } | { quarantined: CacheFileError['reason'] };

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

/**
 * The verified file's bytes are moved to the caller, not cloned: a 4K-token state is ~50 MB that a
 * returning agent would otherwise wait to have copied. The caller takes views on them (cacheFileViews).
 */
function moved(file: Buffer): unknown {
  const whole = file.buffer instanceof ArrayBuffer && file.byteOffset === 0 && file.buffer.byteLength === file.byteLength;
  return Piscina.move(whole ? (file.buffer as ArrayBuffer) : Uint8Array.from(file).buffer);
}

async function read(task: ReadTask): Promise<unknown> {
  let bytes: Buffer;
  try {
    // Synchronous on purpose: this is the cache I/O thread, and fs.promises.readFile reads a large file
    // in 512 KiB chunks, one thread-pool round trip each, which a returning agent would wait for.
    bytes = readFileSync(task.path);
  } catch {
    return { missing: true };
  }
  try {
    decodeCacheFile(bytes, task);
    return moved(bytes);
  } catch (error) {
    if (!(error instanceof CacheFileError)) throw error;
    const quarantine = join(task.path, '..', 'quarantine');
    await mkdir(quarantine, { recursive: true });
    await rename(task.path, join(quarantine, `${basename(task.path)}.${Date.now()}`)).catch(() => undefined);
    return { quarantined: error.reason };
  }
}

/** Resolves to the bytes written, or to a ReadResult (possibly wrapped for transfer by piscina). */
export default async function run(task: WriteTask | ReadTask): Promise<unknown> {
  return task.op === 'write' ? write(task) : read(task);
}
