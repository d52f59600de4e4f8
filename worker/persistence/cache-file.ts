/**
 * One agent's cache as a safetensors file (docs/cache-format.md): an 8-byte little-endian header
 * length, a JSON header (padded with spaces to 8 bytes), then the data. Two tensors: `tokens` (I32,
 * the token ids the KV cells hold) and `state` (U8, llama_state_seq_get_data bytes). `__metadata__`
 * (strings only, as the format requires) carries the format version, the model fingerprint, the KV
 * type, the token count and a SHA-256 of the data, so a truncated, corrupt or foreign file is
 * recognised before any byte of it reaches llama.cpp.
 */
import { createHash } from 'node:crypto';

export const CACHE_FORMAT = 'semantic-kv-cache/1';

export interface CacheMetadata {
  agentId: string;
  /** Identifies the model weights and KV layout the state belongs to (see modelFingerprint). */
  model: string;
  kvType: string;
}

export interface CacheContents extends CacheMetadata {
  tokens: Int32Array;
  state: Uint8Array;
}

/** Thrown for any file that must not be loaded; `reason` is a bounded label for logs and metrics. */
export class CacheFileError extends Error {
  constructor(
    readonly reason: 'truncated' | 'corrupt' | 'foreign',
    message: string,
  ) {
    super(message);
    this.name = 'CacheFileError';
  }
}

function checksum(tokens: Uint8Array, state: Uint8Array): string {
  return createHash('sha256').update(tokens).update(state).digest('hex');
}

export function encodeCacheFile(contents: CacheContents): Buffer[] {
  const tokenBytes = new Uint8Array(contents.tokens.buffer, contents.tokens.byteOffset, contents.tokens.byteLength);
  const header = {
    __metadata__: {
      format: CACHE_FORMAT,
      agent_id: contents.agentId,
      model: contents.model,
      kv_type: contents.kvType,
      token_count: String(contents.tokens.length),
      sha256: checksum(tokenBytes, contents.state),
    },
    tokens: { dtype: 'I32', shape: [contents.tokens.length], data_offsets: [0, tokenBytes.byteLength] },
    state: { dtype: 'U8', shape: [contents.state.byteLength], data_offsets: [tokenBytes.byteLength, tokenBytes.byteLength + contents.state.byteLength] },
  };
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (Buffer.byteLength(json) % 8)) % 8);
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
  return [length, Buffer.from(json), Buffer.from(tokenBytes), Buffer.from(contents.state.buffer, contents.state.byteOffset, contents.state.byteLength)];
}

interface TensorEntry {
  dtype: string;
  shape: number[];
  data_offsets: [number, number];
}

function parseHeader(file: Buffer): { metadata: Record<string, string>; tokens: TensorEntry; state: TensorEntry; dataStart: number } {
  if (file.length < 8) throw new CacheFileError('truncated', 'shorter than the header length');
  const headerLength = Number(file.readBigUInt64LE(0));
  if (8 + headerLength > file.length) throw new CacheFileError('truncated', 'shorter than its header');
  let header: { __metadata__?: Record<string, string>; tokens?: TensorEntry; state?: TensorEntry };
  try {
    header = JSON.parse(file.toString('utf8', 8, 8 + headerLength)) as typeof header;
  } catch {
    throw new CacheFileError('corrupt', 'the header is not JSON');
  }
  const { __metadata__: metadata, tokens, state } = header;
  if (metadata?.format !== CACHE_FORMAT || tokens?.dtype !== 'I32' || state?.dtype !== 'U8') {
    throw new CacheFileError('corrupt', `not a ${CACHE_FORMAT} file`);
  }
  return { metadata, tokens, state, dataStart: 8 + headerLength };
}

/** Reads and checks a whole file; `expected` must match the metadata it was written with. */
export function decodeCacheFile(file: Buffer, expected: CacheMetadata): CacheContents {
  const { metadata, tokens, state, dataStart } = parseHeader(file);
  if (metadata.agent_id !== expected.agentId) throw new CacheFileError('foreign', `written for agent ${metadata.agent_id}`);
  if (metadata.model !== expected.model || metadata.kv_type !== expected.kvType) {
    throw new CacheFileError('foreign', 'written by another model or KV type');
  }
  const end = dataStart + state.data_offsets[1];
  if (file.length < end) throw new CacheFileError('truncated', `${file.length} of ${end} bytes`);
  if (file.length > end || tokens.data_offsets[0] !== 0 || tokens.data_offsets[1] !== state.data_offsets[0]) {
    throw new CacheFileError('corrupt', 'the data section does not match the header');
  }
  const tokenBytes = file.subarray(dataStart, dataStart + tokens.data_offsets[1]);
  const stateBytes = file.subarray(dataStart + state.data_offsets[0], end);
  if (checksum(tokenBytes, stateBytes) !== metadata.sha256 || Number(metadata.token_count) * 4 !== tokenBytes.length) {
    throw new CacheFileError('corrupt', 'checksum mismatch');
  }
  const tokenCopy = new Int32Array(tokenBytes.length / 4);
  new Uint8Array(tokenCopy.buffer).set(tokenBytes);
  return { ...expected, tokens: tokenCopy, state: new Uint8Array(stateBytes) };
}

/**
 * A file name that cannot leave the cache dir: agent ids are already limited to A-Z a-z 0-9 . _ : -
 * (not starting with '.'); ':' is escaped as well since some file systems refuse it.
 */
export function cacheFileName(agentId: string): string {
  return agentId.replace(/[^A-Za-z0-9._-]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')) + '.safetensors';
}

export function agentIdOfFileName(name: string): string | undefined {
  if (!name.endsWith('.safetensors') || name.startsWith('.')) return undefined;
  try {
    return decodeURIComponent(name.slice(0, -'.safetensors'.length));
  } catch {
    return undefined;
  }
}
