/**
 * The whole native surface (addon/*.cc), typed in one place. Only the inference thread imports this
 * file: the addon owns llama.cpp state that must not be shared across threads.
 *
 * Every async method runs on a libuv pool thread (one AsyncWorker per call). While one is in flight
 * the context refuses every other call with code ERR_BUSY, so callers await each call in turn.
 * Errors carry a stable `code` (ERR_MODEL_LOAD, ERR_KV_NO_SLOT, ERR_STATE_IMPORT, ERR_BUSY, ...).
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { projectRoot } from '../../shared/paths.js';
import type { KvType } from '../../shared/inference-options.js';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'none';

export interface ModelLoadOptions {
  /** Layers to offload to a GPU backend; 0 = CPU only, -1 = all. */
  gpuLayers?: number;
  /** Load only the vocabulary (llama.cpp's vocab-only GGUFs): tokenizer calls work, contexts do not. */
  vocabOnly?: boolean;
}

export interface ModelInfo {
  architecture: string;
  name: string;
  description: string;
  /** Training context length from the GGUF metadata. */
  contextLength: number;
  vocabSize: number;
  embeddingLength: number;
  layerCount: number;
  headCount: number;
  headCountKv: number;
  sizeBytes: number;
  parameterCount: number;
  bos: number;
  eos: number;
  /** -1 when the vocabulary has no end-of-turn token. */
  eot: number;
  addBos: boolean;
  /** The Jinja chat template from `tokenizer.chat_template`, or null. */
  chatTemplate: string | null;
}

export interface TokenizeOptions {
  /** Add BOS/EOS if the model's vocabulary says so. */
  addSpecial?: boolean;
  /** Turn special-token text (e.g. `<|im_start|>`) into the special token instead of plain text. */
  parseSpecial?: boolean;
  /**
   * With parseSpecial, reuse the tokens of text between special tokens seen before (default true):
   * the same tokens as llama_tokenize, without re-tokenizing a conversation's earlier messages.
   */
  cache?: boolean;
}

export interface Model {
  info(): ModelInfo;
  tokenize(text: string, options?: TokenizeOptions): Int32Array;
  /** The cached tokenizer's pieces (cached from their second sight) and the bytes they take, at most 32 MiB. */
  tokenizerCache(): { entries: number; bytes: number };
  /** `special`: render special tokens as their text. */
  detokenize(tokens: Int32Array, options?: { special?: boolean }): string;
  /** Raw bytes of one token: may be part of a UTF-8 character, so decode with a streaming decoder. */
  tokenToPiece(token: number, options?: { special?: boolean }): Buffer;
  /** End of generation: EOS, EOT or another end token of the vocabulary. */
  isEog(token: number): boolean;
  /** Throws ERR_BUSY while contexts created from this model are alive. */
  dispose(): void;
}

export interface ContextOptions {
  /** KV cells shared by all sequences (kvUnified) — the block pool's budget. */
  nCtx?: number;
  /** Sequences the context can hold at once; seq ids are [0, nSeqMax). */
  nSeqMax?: number;
  /** Most tokens one decode() may carry. */
  nBatch?: number;
  nUbatch?: number;
  typeK?: KvType;
  typeV?: KvType;
  flashAttention?: boolean;
  /** 0 = llama.cpp's default (4, whatever the machine). */
  threads?: number;
  /** One cell pool for all sequences (default true); false gives each sequence nCtx / nSeqMax cells. */
  kvUnified?: boolean;
  /**
   * A persistent ggml CPU threadpool for the context, as llama-server attaches: how long its threads
   * busy-wait for the next graph before sleeping (ggml's polling level, 0–100; default 50, the
   * server's). -1 attaches none, so llama.cpp starts and joins its threads on every graph compute.
   */
  threadpoolPoll?: number;
}

export interface ContextInfo {
  nCtx: number;
  nCtxSeq: number;
  nSeqMax: number;
  nBatch: number;
  nUbatch: number;
  threads: number;
  /** Whether a persistent CPU threadpool is attached (threadpoolPoll ≥ 0 and a CPU backend). */
  threadpool: boolean;
  /** Bytes a full-context state export would take (KV at its configured types). */
  stateBytes: number;
}

/**
 * Where decode calls' time went since the context was created: waiting for a libuv thread
 * (`queuedMs`), in llama_decode, in sampling, and from the work's end to its completion on the JS
 * thread (`settleMs`). `tokens`: batch tokens decoded.
 */
export interface DecodeTimings {
  decodes: number;
  tokens: number;
  queuedMs: number;
  decodeMs: number;
  sampleMs: number;
  settleMs: number;
}

/** Where in a cache file the state lies, and what its header promised (see worker/persistence/cache-file.ts). */
export interface FileSpan {
  path: string;
  fileBytes: number;
  /** The data section the CRC-32 covers. */
  dataOffset: number;
  dataBytes: number;
  crc32: number;
  stateOffset: number;
  stateBytes: number;
}

/** One batch: token i goes to sequence seqIds[i] at position positions[i]. All arrays equal length ≤ nBatch. */
export interface Batch {
  tokens: Int32Array;
  positions: Int32Array;
  seqIds: Int32Array;
  /** 1 where logits are wanted (the last prompt token of a sequence, or a generated token). */
  logits: Uint8Array;
}

/** Sample one token from the logits of batch index `index` (which must have logits set). */
export interface SampleRequest {
  index: number;
  sampler: Sampler;
}

export interface Context {
  info(): ContextInfo;
  /** Readable at any time, also while a decode is in flight. */
  timings(): DecodeTimings;
  /** One llama_decode over the batch, then each sample request; resolves to the sampled tokens in order. */
  decode(batch: Batch, samples?: SampleRequest[]): Promise<Int32Array>;
  /** Export one sequence's state (token positions + KV) into a transferable buffer. */
  stateSeqGet(seq: number): Promise<Uint8Array>;
  /** Import a state exported by stateSeqGet from a context of the same model and KV types; resolves to bytes read. */
  stateSeqSet(seq: number, bytes: Uint8Array): Promise<number>;
  /**
   * Import a state straight from an agent's cache file: the addon maps the file, checks its size and
   * the CRC-32 of its data section, and imports from the mapping. Rejects with ERR_CACHE_FILE_CHANGED,
   * ERR_CACHE_FILE_CHECKSUM or ERR_CACHE_FILE_UNREADABLE (the file is bad: quarantine it) or
   * ERR_STATE_IMPORT (llama.cpp refused the state).
   */
  stateSeqSetFile(seq: number, span: FileSpan): Promise<number>;
  stateSeqSize(seq: number): number;
  /** A copy of the logits (one per vocabulary token) at batch index `index` of the last decode. */
  logitsAt(index: number): Float32Array;
  /** Remove positions [p0, p1) of a sequence (-1 = open end); false if a partial removal is impossible. */
  seqRemove(seq: number, p0?: number, p1?: number): boolean;
  seqCopy(src: number, dst: number, p0?: number, p1?: number): void;
  /** Largest position held for the sequence, -1 when empty. */
  seqPosMax(seq: number): number;
  seqPosMin(seq: number): number;
  clear(): void;
  dispose(): void;
}

export interface SamplerOptions {
  /** 0 = greedy. */
  temperature?: number;
  topK?: number;
  topP?: number;
  minP?: number;
  /** Omit for a random seed. */
  seed?: number;
  repeatPenalty?: number;
  frequencyPenalty?: number;
  presencePenalty?: number;
  penaltyLastN?: number;
  /**
   * GBNF grammar (root rule `root`) the generated text must follow; only end-of-generation tokens
   * are allowed once it is complete. Text llama.cpp cannot parse throws an Error coded ERR_GRAMMAR.
   */
  grammar?: string;
}

export interface Sampler {
  /** Feed tokens (the prompt) to the penalty history without sampling; the grammar never sees them. */
  accept(tokens: Int32Array): void;
  /** Samples (and accepts) a token from a row of logits saved earlier, as decode's samples do from the context's. */
  sampleLogits(logits: Float32Array): number;
  reset(): void;
  dispose(): void;
}

export interface Device {
  name: string;
  description: string;
  type: 'cpu' | 'gpu' | 'igpu' | 'accel';
  memoryFree: number;
  memoryTotal: number;
}

export interface Addon {
  loadBackends(dir: string): void;
  devices(): Device[];
  setLogLevel(level: LogLevel): void;
  systemInfo(): string;
  loadModel(path: string, options?: ModelLoadOptions): Promise<Model>;
  createContext(model: Model, options?: ContextOptions): Promise<Context>;
  maxParallelSequences: number;
  Sampler: new (model: Model, options?: SamplerOptions) => Sampler;
}

interface LibraryConfig {
  variables: { llama_lib_dir: string; llama_release: string };
}

/** The folder ggml's backends are loaded from: `$SEMANTIC_LLAMA_LIB_DIR`, else the one the install step linked. */
export function backendsDir(): string {
  const config = JSON.parse(readFileSync(join(projectRoot(), 'deps', 'llama-libs.gypi'), 'utf8')) as LibraryConfig;
  return process.env.SEMANTIC_LLAMA_LIB_DIR ?? config.variables.llama_lib_dir;
}

let loaded: Addon | undefined;

/** Loads the compiled addon and registers ggml's backends from the folder it was linked against. */
export function loadAddon(): Addon {
  if (loaded !== undefined) return loaded;
  const dir = backendsDir();
  const require = createRequire(import.meta.url);
  const addon = require(join(projectRoot(), 'build', 'Release', 'semantic_llama.node')) as Addon;
  addon.setLogLevel((process.env.SEMANTIC_LLAMA_LOG as LogLevel | undefined) ?? 'error');
  addon.loadBackends(dir);
  loaded = addon;
  return addon;
}
