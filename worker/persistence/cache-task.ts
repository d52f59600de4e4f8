/**
 * The piscina task that does agents' cache file I/O off the inference thread: writes are atomic
 * (temp file, fsync, rename); inspections check the header and read only the tokens and logits, leaving the
 * state to be checksummed and imported from a mapping of the file by the addon.
 * A file that fails a check is moved into `quarantine/` so it is never read again, and is a miss.
 */
import { mkdir, open, readFile, rename, stat, type FileHandle } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { move } from 'piscina';
import {
  CacheFileError,
  checkCacheHeader,
  decodeCacheFile,
  encodeCacheFile,
  type CacheContents,
  type CacheFileLayout,
  type CacheMetadata,
  type SharedPrefixRef,
} from './cache-file.js';
import { joinStates } from '../engine/kv/state-blob.js';
import { testFaults } from '../test-faults.js';
import { ensureSegment, joinWithSegment, splitState, startsAt, writeAtomically, type SegmentTarget } from './segment-files.js';
import { epochMs, type WriteRun } from '../tracing/timeline.js';
import type { TraceCarrier } from '../../shared/protocol/messages.js';

export interface WriteTask extends CacheMetadata {
  op: 'write';
  path: string;
  tokens: Int32Array;
  logits: Float32Array;
  /** The state in pieces, in position order (exported a bounded number of cells at a time): joined here, off the inference thread. */
  state: Uint8Array[];
  shareScope?: string | undefined;
  /** Put the first cells in this segment (written from this state if its file is missing). */
  segment?: SegmentTarget | undefined;
  /** The state holds only the cells past the segment, whose file must exist (the inference thread exported no more). */
  ownCellsOnly?: boolean | undefined;
  /** The trace of the turn written (tracing on): the write's time on this thread comes back as `ran`. */
  trace?: TraceCarrier | undefined;
}

/** What a write or rewrite left: the file's bytes, and the segment its first cells are in, if any. */
export interface WriteResult {
  bytes: number;
  segment?: { name: string; bytes: number };
  ran?: WriteRun;
}

/**
 * Moves an older file's first cells onto a segment made for another agent's write: the file is read
 * (checksum checked) and rewritten with its own cells only. Null: the file is gone, bad (quarantined),
 * already on a segment, or holds other tokens by now.
 */
export interface RebaseTask extends CacheMetadata {
  op: 'rebase';
  path: string;
  segment: SegmentTarget;
  /** The segment's tokens: the file must still open with them. */
  expected: Int32Array;
}

export interface InspectTask extends CacheMetadata {
  op: 'inspect';
  path: string;
}

/**
 * The tokens a file holds and its sharing scope, read after a restart: how the Agents API lists
 * files found at startup, and how their prefixes are found for other agents (prefix-index.ts).
 */
export interface HeaderTask extends CacheMetadata {
  op: 'header';
  path: string;
  segmentsDir: string;
}

export interface HeaderResult {
  tokens: Int32Array;
  shareScope: string | undefined;
  /** The segment holding its first cells, and that file's size (0: missing). */
  segment?: { name: string; bytes: number };
}

/**
 * The whole state of a file, checksum checked, for a caller that imports only a prefix of it
 * (another agent's file: worker/engine/kv/state-blob.ts cuts it first). A bad file is quarantined.
 */
export interface ReadTask extends CacheMetadata {
  op: 'read';
  path: string;
  segmentsDir: string;
}

export interface QuarantineTask {
  op: 'quarantine';
  path: string;
}

type Missing = { missing: true } | { quarantined: CacheFileError['reason'] };

/** The file's tokens and logits and where its data lies, or why there are none. */
export type InspectResult = { tokens: Int32Array; logits: Float32Array; layout: CacheFileLayout } | Missing;

/** A safetensors header is a few hundred bytes here; a length beyond this is a corrupt file, not a read. */
const MAX_HEADER_BYTES = 1 << 20;

async function write(task: WriteTask): Promise<WriteResult> {
  if (task.trace === undefined) return writeState(task);
  const startMs = epochMs();
  const result = await writeState(task);
  return { ...result, ran: { startMs, endMs: epochMs() } };
}

async function writeState(task: WriteTask): Promise<WriteResult> {
  if (task.agentId === testFaults.writerExitAgent) process.exit(1); // this thread only: piscina starts another
  const { segment, ownCellsOnly, state: pieces, ...rest } = task;
  const state = pieces.length === 1 ? (pieces[0] as Uint8Array) : joinStates(...pieces);
  if (ownCellsOnly === true && segment !== undefined) return writeOwnCells(task.path, { ...rest, state, prefix: undefined }, segment);
  return writeContents(task.path, { ...rest, state, prefix: undefined }, segment);
}

/**
 * A state of the agent's own cells onto a segment file that exists: it must start right where the
 * segment ends. Anything else throws, and the agent's previous file (or none) stays: a later miss.
 */
async function writeOwnCells(path: string, contents: CacheContents, segment: SegmentTarget): Promise<WriteResult> {
  const existing = await stat(segment.path).catch(() => undefined);
  if (existing?.isFile() !== true || existing.size === 0) throw new Error(`segment ${segment.segment} is missing`);
  if (!startsAt(contents.state, segment.tokens)) throw new Error(`the state does not start where segment ${segment.segment} ends`);
  const prefix: SharedPrefixRef = { segment: segment.segment, tokens: segment.tokens };
  const bytes = await writeAtomically(path, encodeCacheFile({ ...contents, prefix }));
  return { bytes, segment: { name: segment.segment, bytes: existing.size } };
}

/** Writes the contents, on the segment when its state can be cut there (else whole). */
async function writeContents(path: string, contents: CacheContents, segment: SegmentTarget | undefined): Promise<WriteResult> {
  const split = segment === undefined ? undefined : splitState(contents.state, segment.tokens);
  if (segment === undefined || split === undefined) return { bytes: await writeAtomically(path, encodeCacheFile(contents)) };
  const segmentBytes = await ensureSegment(segment, split.head, contents.tokens, contents);
  const prefix: SharedPrefixRef = { segment: segment.segment, tokens: segment.tokens };
  const bytes = await writeAtomically(path, encodeCacheFile({ ...contents, state: split.tail, prefix }));
  return { bytes, segment: { name: segment.segment, bytes: segmentBytes } };
}

async function rebase(task: RebaseTask): Promise<WriteResult | null> {
  const file = await readFile(task.path).catch(() => undefined);
  if (file === undefined) return null;
  let contents: CacheContents;
  try {
    contents = decodeCacheFile(file, task);
  } catch (error) {
    await quarantineFor(error, task.path);
    return null;
  }
  const opensAlike = task.expected.every((token, i) => token === contents.tokens[i]) && contents.tokens.length > task.expected.length;
  if (contents.prefix !== undefined || !opensAlike) return null;
  const result = await writeContents(task.path, { ...contents, state: Uint8Array.from(contents.state) }, task.segment);
  return result.segment === undefined ? null : result;
}

/** The checked header's layout; throws CacheFileError for a file that is not ours or not whole. */
async function readLayout(file: FileHandle, metadata: CacheMetadata): Promise<CacheFileLayout> {
  const { size } = await file.stat();
  const prefix = Buffer.alloc(8);
  await file.read(prefix, 0, 8, 0);
  const headerBytes = size >= 8 ? Number(prefix.readBigUInt64LE(0)) : 0;
  if (headerBytes > MAX_HEADER_BYTES) throw new CacheFileError('corrupt', `a ${headerBytes}-byte header`);
  const head = Buffer.alloc(Math.min(size, 8 + headerBytes));
  await file.read(head, 0, head.length, 0);
  return checkCacheHeader(head, size, metadata);
}

/** Null for a missing or bad file: the agent's next read (inspect) deals with it. */
async function headerTokens(task: HeaderTask): Promise<HeaderResult | null> {
  const file = await open(task.path, 'r').catch(() => undefined);
  if (file === undefined) return null;
  try {
    const layout = await readLayout(file, task);
    const tokens = new Int32Array(layout.tokensBytes / 4);
    await file.read(new Uint8Array(tokens.buffer), 0, layout.tokensBytes, layout.tokensOffset);
    if (layout.prefix === undefined) return { tokens, shareScope: layout.shareScope };
    const segment = await stat(join(task.segmentsDir, `${layout.prefix.segment}.safetensors`)).catch(() => undefined);
    return { tokens, shareScope: layout.shareScope, segment: { name: layout.prefix.segment, bytes: segment?.size ?? 0 } };
  } catch (error) {
    if (error instanceof CacheFileError) return null;
    throw error;
  } finally {
    await file.close();
  }
}

async function inspect(task: InspectTask): Promise<InspectResult> {
  let file;
  try {
    file = await open(task.path, 'r');
  } catch {
    return { missing: true };
  }
  try {
    const layout = await readLayout(file, task);
    // Tokens and logits lie next to each other: one read. The addon's checksum over the mapped file
    // covers them too, and they are used only once that import succeeded.
    const both = new Uint8Array(layout.tokensBytes + layout.logitsBytes);
    await file.read(both, 0, both.length, layout.tokensOffset);
    const tokens = new Int32Array(both.buffer, 0, layout.tokensBytes / 4);
    const logits = new Float32Array(both.buffer, layout.tokensBytes, layout.logitsBytes / 4);
    return { tokens, logits, layout };
  } catch (error) {
    return quarantineFor(error, task.path);
  } finally {
    await file.close();
  }
}

/** The state, moved (not copied) to the caller; null for a missing or bad (now quarantined) file. */
async function readState(task: ReadTask): Promise<unknown> {
  const file = await readFile(task.path).catch(() => undefined);
  if (file === undefined) return null;
  try {
    const contents = decodeCacheFile(file, task);
    if (contents.prefix === undefined) return move(contents.state);
    return move(await joinWithSegment(contents, join(task.segmentsDir, `${contents.prefix.segment}.safetensors`), task));
  } catch (error) {
    await quarantineFor(error, task.path);
    return null;
  }
}

/** A bad file goes to quarantine/ (never read again); anything else is a real error and is thrown. */
async function quarantineFor(error: unknown, path: string): Promise<{ quarantined: CacheFileError['reason'] }> {
  if (!(error instanceof CacheFileError)) throw error;
  await quarantine(path);
  return { quarantined: error.reason };
}

async function quarantine(path: string): Promise<void> {
  const folder = join(path, '..', 'quarantine');
  await mkdir(folder, { recursive: true });
  await rename(path, join(folder, `${basename(path)}.${Date.now()}`)).catch(() => undefined);
}

/** Resolves to a WriteResult (or null for a rebase not done), an InspectResult, a HeaderResult or a state (or null), or nothing (quarantine). */
export default async function run(task: WriteTask | RebaseTask | InspectTask | HeaderTask | ReadTask | QuarantineTask): Promise<unknown> {
  switch (task.op) {
    case 'write':
      return write(task);
    case 'rebase':
      return rebase(task);
    case 'inspect':
      return inspect(task);
    case 'header':
      return headerTokens(task);
    case 'read':
      return readState(task);
    case 'quarantine':
      return quarantine(task.path);
  }
}
