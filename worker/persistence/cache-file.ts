/**
 * One agent's cache as a safetensors file (docs/cache-format.md): an 8-byte little-endian header
 * length, a JSON header (padded with spaces to 8 bytes), then the data. Two tensors: `tokens` (I32,
 * the token ids the KV cells hold) and `state` (U8, llama_state_seq_get_data bytes). `__metadata__`
 * (strings only, as the format requires) carries the format version, the model fingerprint, the KV
 * type, the token count and a CRC-32 of the data, so a truncated, corrupt or foreign file is
 * recognised before any byte of it reaches llama.cpp.
 *
 * Why CRC-32 and not a cryptographic hash: the check guards against torn and bit-rotted files in our
 * own dir, not against an attacker who can write there (who could forge any checksum), and it is on
 * a returning agent's time to first token: 12 ms for a 4K-token Qwen2.5-0.5B state here vs 32 ms for
 * SHA-256 (version 1 of the format).
 */
import { crc32 } from 'node:zlib';

export const CACHE_FORMAT = 'semantic-kv-cache/2';

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

/** CRC-32 (zlib's) of the data section, as 8 hex digits. */
function checksum(tokens: Uint8Array, state: Uint8Array): string {
  return crc32(state, crc32(tokens)).toString(16).padStart(8, '0');
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
      crc32: checksum(tokenBytes, contents.state),
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
  if (typeof metadata?.format === 'string' && metadata.format.startsWith('semantic-kv-cache/') && metadata.format !== CACHE_FORMAT) {
    throw new CacheFileError('foreign', `format ${metadata.format}, this server reads ${CACHE_FORMAT}`);
  }
  if (metadata?.format !== CACHE_FORMAT || tokens?.dtype !== 'I32' || state?.dtype !== 'U8') {
    throw new CacheFileError('corrupt', `not a ${CACHE_FORMAT} file`);
  }
  return { metadata, tokens, state, dataStart: 8 + headerLength };
}

/** Where a checked header puts the data: what a reader needs to map the file and check it in place. */
export interface CacheFileLayout {
  fileBytes: number;
  /** The data section (tokens then state) that the CRC-32 covers. */
  dataOffset: number;
  dataBytes: number;
  tokensOffset: number;
  tokensBytes: number;
  stateOffset: number;
  stateBytes: number;
  crc32: number;
}

/**
 * Checks everything but the checksum from a file's first bytes (at least its length prefix and
 * header) and its size: format, dtypes, agent, model, KV type, and that the data section covers the
 * rest of the file exactly.
 */
export function checkCacheHeader(head: Buffer, fileBytes: number, expected: CacheMetadata): CacheFileLayout {
  const { metadata, tokens, state, dataStart } = parseHeader(head);
  if (metadata.agent_id !== expected.agentId) throw new CacheFileError('foreign', `written for agent ${metadata.agent_id}`);
  if (metadata.model !== expected.model || metadata.kv_type !== expected.kvType) {
    throw new CacheFileError('foreign', 'written by another model or KV type');
  }
  const end = dataStart + state.data_offsets[1];
  if (fileBytes < end) throw new CacheFileError('truncated', `${fileBytes} of ${end} bytes`);
  const tokensBytes = tokens.data_offsets[1];
  const crc = /^[0-9a-f]{8}$/.test(metadata.crc32 ?? '') ? parseInt(metadata.crc32 as string, 16) : NaN;
  if (fileBytes > end || tokens.data_offsets[0] !== 0 || tokensBytes !== state.data_offsets[0] || Number.isNaN(crc)) {
    throw new CacheFileError('corrupt', 'the data section does not match the header');
  }
  if (Number(metadata.token_count) * 4 !== tokensBytes) throw new CacheFileError('corrupt', 'the token count does not match');
  return {
    fileBytes,
    dataOffset: dataStart,
    dataBytes: end - dataStart,
    tokensOffset: dataStart,
    tokensBytes,
    stateOffset: dataStart + tokensBytes,
    stateBytes: end - dataStart - tokensBytes,
    crc32: crc,
  };
}

/**
 * Checks a whole file in memory, checksum included; `expected` must match the metadata it was written
 * with. The server itself checks the header here (checkCacheHeader) and the checksum in the addon, on
 * a mapping of the file; this is the reference reader (tests, and the benchmark's read + import floor).
 * The tokens and state returned are views on `file`, not copies (the data section starts 8-byte aligned).
 */
export function decodeCacheFile(file: Buffer, expected: CacheMetadata): CacheContents {
  const layout = checkCacheHeader(file, file.length, expected);
  const tokenBytes = file.subarray(layout.tokensOffset, layout.stateOffset);
  const stateBytes = file.subarray(layout.stateOffset, layout.dataOffset + layout.dataBytes);
  if (checksum(tokenBytes, stateBytes) !== layout.crc32.toString(16).padStart(8, '0')) {
    throw new CacheFileError('corrupt', 'checksum mismatch');
  }
  const tokens32 =
    tokenBytes.byteOffset % 4 === 0
      ? new Int32Array(tokenBytes.buffer, tokenBytes.byteOffset, tokenBytes.length / 4)
      : new Int32Array(Uint8Array.from(tokenBytes).buffer);
  return { ...expected, tokens: tokens32, state: new Uint8Array(stateBytes.buffer, stateBytes.byteOffset, stateBytes.length) };
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
