/**
 * One agent's cache as a safetensors file (docs/cache-format.md): an 8-byte little-endian header
 * length, a JSON header (padded with spaces to 8 bytes), then the data. Three tensors: `tokens` (I32,
 * the token ids the KV cells hold), `logits` (F32, the logits after the last of them, or empty) and
 * `state` (U8, llama_state_seq_get_data bytes). `__metadata__`
 * (strings only, as the format requires) carries the format version, the model fingerprint, the KV
 * type and V layout, the token count and a CRC-32 of the data, so a truncated, corrupt or foreign file is
 * recognised before any byte of it reaches llama.cpp.
 *
 * Why CRC-32 and not a cryptographic hash: the check guards against torn and bit-rotted files in our
 * own dir, not against an attacker who can write there (who could forge any checksum), and it is on
 * a returning agent's time to first token: 12 ms for a 4K-token Qwen2.5-0.5B state here vs 32 ms for
 * SHA-256 (version 1 of the format).
 */
import { crc32 } from 'node:zlib';

export const CACHE_FORMAT = 'semantic-kv-cache/4';
/** Version 3 files (no shared prefix) are still read as they are; they are rewritten as 4 on the agent's next turn. */
const READABLE_FORMATS = ['semantic-kv-cache/3', CACHE_FORMAT];

/**
 * A file whose first cells are in a shared segment file (segments/<segment>.safetensors, a cache file
 * of agent `segment:<segment>` holding the cells at positions [0, tokens)): its own state holds the
 * cells from `tokens` on (disk-segments.ts).
 */
export interface SharedPrefixRef {
  segment: string;
  tokens: number;
}

export interface CacheMetadata {
  agentId: string;
  /** Identifies the model weights and KV layout the state belongs to (see modelFingerprint). */
  model: string;
  kvType: string;
  /**
   * Whether V is stored transposed, as llama.cpp does without flash attention: a state written one
   * way cannot be imported into a context that stores it the other.
   */
  vTransposed: boolean;
}

export interface CacheContents extends CacheMetadata {
  tokens: Int32Array;
  /**
   * The logits that followed the last token (a whole vocabulary), or empty when unknown: with them a
   * request whose whole prompt is cached samples its first token without a decode.
   */
  logits: Float32Array;
  state: Uint8Array;
  /**
   * Who may reuse a prefix of this state (worker/engine/kv/prefix-index.ts): an API key's id, '*', or
   * absent (the agent alone). Read back after a restart so that sharing keeps its scope.
   */
  shareScope?: string | undefined;
  prefix?: SharedPrefixRef | undefined;
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

function vLayout(vTransposed: boolean): string {
  return vTransposed ? 'transposed' : 'rows';
}

/**
 * CRC-32 (zlib's) of the data section, as 8 hex digits. Empty parts are skipped: node's crc32 of an
 * empty view returns 0 instead of the running value it was given.
 */
function checksum(data: Uint8Array[]): string {
  return data
    .reduce((crc, part) => (part.byteLength > 0 ? crc32(part, crc) : crc), 0)
    .toString(16)
    .padStart(8, '0');
}

const bytesOf = (array: Int32Array | Float32Array): Uint8Array => new Uint8Array(array.buffer, array.byteOffset, array.byteLength);

export function encodeCacheFile(contents: CacheContents): Buffer[] {
  const tokenBytes = bytesOf(contents.tokens);
  const logitBytes = bytesOf(contents.logits);
  const stateStart = tokenBytes.byteLength + logitBytes.byteLength;
  const header = {
    __metadata__: {
      format: CACHE_FORMAT,
      agent_id: contents.agentId,
      model: contents.model,
      kv_type: contents.kvType,
      v_layout: vLayout(contents.vTransposed),
      token_count: String(contents.tokens.length),
      crc32: checksum([tokenBytes, logitBytes, contents.state]),
      ...(contents.shareScope === undefined ? {} : { share_scope: contents.shareScope }),
      ...(contents.prefix === undefined ? {} : { prefix_segment: contents.prefix.segment, prefix_tokens: String(contents.prefix.tokens) }),
    },
    tokens: { dtype: 'I32', shape: [contents.tokens.length], data_offsets: [0, tokenBytes.byteLength] },
    logits: { dtype: 'F32', shape: [contents.logits.length], data_offsets: [tokenBytes.byteLength, stateStart] },
    state: { dtype: 'U8', shape: [contents.state.byteLength], data_offsets: [stateStart, stateStart + contents.state.byteLength] },
  };
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (Buffer.byteLength(json) % 8)) % 8);
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
  const data = [tokenBytes, logitBytes, contents.state].map((part) => Buffer.from(part.buffer, part.byteOffset, part.byteLength));
  return [length, Buffer.from(json), ...data];
}

interface TensorEntry {
  dtype: string;
  shape: number[];
  data_offsets: [number, number];
}

interface ParsedHeader {
  metadata: Record<string, string>;
  tokens: TensorEntry;
  logits: TensorEntry;
  state: TensorEntry;
  dataStart: number;
}

function parseHeader(file: Buffer): ParsedHeader {
  if (file.length < 8) throw new CacheFileError('truncated', 'shorter than the header length');
  const headerLength = Number(file.readBigUInt64LE(0));
  if (8 + headerLength > file.length) throw new CacheFileError('truncated', 'shorter than its header');
  let header: { __metadata__?: Record<string, string>; tokens?: TensorEntry; logits?: TensorEntry; state?: TensorEntry };
  try {
    header = JSON.parse(file.toString('utf8', 8, 8 + headerLength)) as typeof header;
  } catch {
    throw new CacheFileError('corrupt', 'the header is not JSON');
  }
  const { __metadata__: metadata, tokens, logits, state } = header;
  const format = metadata?.format ?? '';
  if (format.startsWith('semantic-kv-cache/') && !READABLE_FORMATS.includes(format)) {
    throw new CacheFileError('foreign', `format ${format}, this server reads ${READABLE_FORMATS.join(' and ')}`);
  }
  if (metadata === undefined || !READABLE_FORMATS.includes(format) || tokens?.dtype !== 'I32' || logits?.dtype !== 'F32' || state?.dtype !== 'U8') {
    throw new CacheFileError('corrupt', `not a ${CACHE_FORMAT} file`);
  }
  return { metadata, tokens, logits, state, dataStart: 8 + headerLength };
}

/** Where a checked header puts the data: what a reader needs to map the file and check it in place. */
export interface CacheFileLayout {
  fileBytes: number;
  /** The data section (tokens then state) that the CRC-32 covers. */
  dataOffset: number;
  dataBytes: number;
  tokensOffset: number;
  tokensBytes: number;
  logitsOffset: number;
  logitsBytes: number;
  stateOffset: number;
  stateBytes: number;
  crc32: number;
  /** The sharing scope the file was written with (absent: shared with no other agent). */
  shareScope?: string;
  /** Where its first cells are, when its state holds only the cells after a shared prefix. */
  prefix?: SharedPrefixRef;
}

/** A valid prefix reference, or undefined when the file has none; a malformed one makes the file corrupt. */
function prefixRef(metadata: Record<string, string>, tokenCount: number): SharedPrefixRef | undefined {
  const { prefix_segment: segment, prefix_tokens: tokens } = metadata;
  if (segment === undefined && tokens === undefined) return undefined;
  const count = Number(tokens);
  if (typeof segment !== 'string' || !/^[0-9a-f]{1,64}-[0-9]{1,9}$/.test(segment) || !Number.isInteger(count) || count <= 0 || count >= tokenCount) {
    throw new CacheFileError('corrupt', 'a bad shared-prefix reference');
  }
  return { segment, tokens: count };
}

/**
 * Checks everything but the checksum from a file's first bytes (at least its length prefix and
 * header) and its size: format, dtypes, agent, model, KV type, and that the data section covers the
 * rest of the file exactly.
 */
export function checkCacheHeader(head: Buffer, fileBytes: number, expected: CacheMetadata): CacheFileLayout {
  const { metadata, tokens, logits, state, dataStart } = parseHeader(head);
  if (metadata.agent_id !== expected.agentId) throw new CacheFileError('foreign', `written for agent ${metadata.agent_id}`);
  if (metadata.model !== expected.model || metadata.kv_type !== expected.kvType || metadata.v_layout !== vLayout(expected.vTransposed)) {
    throw new CacheFileError('foreign', 'written by another model, KV type or V layout');
  }
  const end = dataStart + state.data_offsets[1];
  if (fileBytes < end) throw new CacheFileError('truncated', `${fileBytes} of ${end} bytes`);
  const [tokensBytes, logitsEnd, stateStart] = [tokens.data_offsets[1], logits.data_offsets[1], state.data_offsets[0]];
  const crc = /^[0-9a-f]{8}$/.test(metadata.crc32 ?? '') ? parseInt(metadata.crc32 as string, 16) : NaN;
  const contiguous = tokens.data_offsets[0] === 0 && logits.data_offsets[0] === tokensBytes && stateStart === logitsEnd;
  if (fileBytes > end || !contiguous || (logitsEnd - tokensBytes) % 4 !== 0 || Number.isNaN(crc)) {
    throw new CacheFileError('corrupt', 'the data section does not match the header');
  }
  if (Number(metadata.token_count) * 4 !== tokensBytes) throw new CacheFileError('corrupt', 'the token count does not match');
  const prefix = prefixRef(metadata, tokensBytes / 4);
  return {
    fileBytes,
    dataOffset: dataStart,
    dataBytes: end - dataStart,
    tokensOffset: dataStart,
    tokensBytes,
    logitsOffset: dataStart + tokensBytes,
    logitsBytes: logitsEnd - tokensBytes,
    stateOffset: dataStart + stateStart,
    stateBytes: end - dataStart - stateStart,
    crc32: crc,
    ...(typeof metadata.share_scope === 'string' ? { shareScope: metadata.share_scope } : {}),
    ...(prefix === undefined ? {} : { prefix }),
  };
}

/**
 * Checks a whole file in memory, checksum included; `expected` must match the metadata it was written
 * with. The server itself checks the header here (checkCacheHeader) and the checksum in the addon, on
 * a mapping of the file; this is the reference reader (tests, and the benchmark's read + import floor).
 * The state returned is a view on `file`; tokens and logits are copies (aligned for their typed arrays).
 */
export function decodeCacheFile(file: Buffer, expected: CacheMetadata): CacheContents {
  const layout = checkCacheHeader(file, file.length, expected);
  const data = file.subarray(layout.dataOffset, layout.dataOffset + layout.dataBytes);
  if (checksum([data]) !== layout.crc32.toString(16).padStart(8, '0')) throw new CacheFileError('corrupt', 'checksum mismatch');
  const aligned = (offset: number, bytes: number): ArrayBuffer => Uint8Array.from(file.subarray(offset, offset + bytes)).buffer;
  return {
    ...expected,
    tokens: new Int32Array(aligned(layout.tokensOffset, layout.tokensBytes)),
    logits: new Float32Array(aligned(layout.logitsOffset, layout.logitsBytes)),
    state: file.subarray(layout.stateOffset, layout.stateOffset + layout.stateBytes),
    shareScope: layout.shareScope,
    prefix: layout.prefix,
  };
}
