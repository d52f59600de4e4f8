/**
 * The piscina thread's side of shared-prefix segments (disk-segments.ts): cutting a state into the
 * segment's cells and the agent's own, writing a segment file once, and joining the two back when an
 * agent's file is read. A segment file is a cache file (cache-file.ts) of agent `segment:<name>`
 * with no logits, in the cache dir's segments/ folder.
 */
import { mkdir, open, readFile, rename, rm, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { joinStates, parseState, StateBlobError, stateCells } from '../engine/kv/state-blob.js';
import { checkDiskWriteFault } from '../test-faults.js';
import { tempPathFor } from './temp-files.js';
import { CacheFileError, decodeCacheFile, encodeCacheFile, type CacheContents, type CacheMetadata, type SharedPrefixRef } from './cache-file.js';

/** Where a write's or rewrite's first cells go. */
export interface SegmentTarget extends SharedPrefixRef {
  path: string;
}

export const segmentAgentId = (name: string): string => `segment:${name}`;

/**
 * Writes the parts to `path` atomically: temp file, fsync, rename. Resolves to the bytes written. The
 * temp file names its writer, so a sweep at startup removes it only once that writer is gone (temp-files.ts).
 */
export async function writeAtomically(path: string, parts: Buffer[]): Promise<number> {
  const temp = tempPathFor(path);
  checkDiskWriteFault(temp);
  const file = await open(temp, 'w');
  try {
    let bytes = 0;
    for (const part of parts) {
      await file.write(part);
      bytes += part.length;
    }
    await file.sync();
    await file.close();
    await rename(temp, path);
    return bytes;
  } catch (error) {
    await file.close().catch(() => undefined);
    await rm(temp, { force: true });
    throw error;
  }
}

/** The state's cells before and from `at`, or undefined when it cannot be cut here (it is written whole). */
export function splitState(state: Uint8Array, at: number): { head: Uint8Array; tail: Uint8Array } | undefined {
  const head = stateCells(state, 0, at);
  const tail = stateCells(state, at, Infinity);
  // A state missing some of the prefix's cells cannot stand for the segment.
  if (head === undefined || tail === undefined || parseState(head).positions.length !== at) return undefined;
  return { head, tail };
}

/** Whether a state's cells are exactly the positions from `at` on (what follows a segment of `at` tokens). */
export function startsAt(state: Uint8Array, at: number): boolean {
  try {
    const { positions } = parseState(state);
    return positions.length > 0 && positions.every((p) => p >= at) && positions.includes(at);
  } catch (error) {
    if (error instanceof StateBlobError) return false;
    throw error;
  }
}

/**
 * The segment's file, written from `head` unless it is already there (another agent's write made
 * it; the same tokens give the same cells). Resolves to its size.
 */
export async function ensureSegment(target: SegmentTarget, head: Uint8Array, tokens: Int32Array, metadata: CacheMetadata & { shareScope?: string | undefined }): Promise<number> {
  const existing = await stat(target.path).catch(() => undefined);
  if (existing?.isFile() === true && existing.size > 0) return existing.size;
  await mkdir(dirname(target.path), { recursive: true });
  const contents: CacheContents = {
    ...metadata,
    agentId: segmentAgentId(target.segment),
    tokens: tokens.slice(0, target.tokens),
    logits: new Float32Array(0),
    state: head,
    prefix: undefined,
  };
  return writeAtomically(target.path, encodeCacheFile(contents));
}

/** The agent file's whole state: its own cells joined after its segment's (both checksum checked). */
export async function joinWithSegment(own: CacheContents, segmentPath: string, metadata: CacheMetadata): Promise<Uint8Array> {
  const ref = own.prefix as SharedPrefixRef;
  const file = await readFile(segmentPath).catch(() => undefined);
  if (file === undefined) throw new CacheFileError('corrupt', `its shared prefix ${ref.segment} is missing`);
  const segment = decodeCacheFile(file, { ...metadata, agentId: segmentAgentId(ref.segment) });
  const same = segment.tokens.length === ref.tokens && segment.tokens.every((token, i) => token === own.tokens[i]);
  if (!same) throw new CacheFileError('corrupt', `its shared prefix ${ref.segment} holds other tokens`);
  try {
    return joinStates(segment.state, own.state);
  } catch (error) {
    if (error instanceof StateBlobError) throw new CacheFileError('corrupt', `cannot join its shared prefix: ${error.message}`);
    throw error;
  }
}
