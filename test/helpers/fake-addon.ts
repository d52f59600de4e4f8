/**
 * A deterministic llama.cpp in memory for unit tests of the engine core, the twin of fake-disk.ts:
 * it speaks worker/engine/addon.ts, so the engine runs on it unchanged, in milliseconds, with no
 * compiled addon.
 *
 * - Tokens are characters: one token per UTF-16 code unit below VOCAB_SIZE, no BOS; `EOS` ends generation.
 * - The token sampled after position p is `tokenAt(p + 1)` whatever came before (default: 'a'..'z'
 *   cycling), so a prompt of n tokens generates `tokenAt(n)`, `tokenAt(n + 1)`, ... and a warm start
 *   generates what a cold one does. Logits are one-hot on that token; samplers take the argmax.
 * - The KV cache is cells of (position, token, sequences), `nCtx` of them, shared by `seqCopy` as a
 *   unified llama.cpp cache shares them. A decode must continue each sequence at its next position
 *   (llama.cpp's "Y = X + 1" check); one that needs more cells than are free fails ERR_KV_NO_SLOT.
 * - A state export is llama.cpp's sequence-state layout (state-blob.ts) with one layer whose K and V
 *   rows are the cells' tokens: a copy of the tokens, which the engine's blob code can cut and join.
 * - While an async call is in flight every other call but `timings()` throws ERR_BUSY, as the addon
 *   does, so an engine that touches the context mid-decode fails the test.
 * - `failDecode` makes chosen decode calls fail with a code (ERR_KV_NO_SLOT, ERR_DECODE_FATAL, ...),
 *   and `failImports` state imports fail.
 */
import type {
  Addon,
  Batch,
  Context,
  ContextInfo,
  ContextOptions,
  DecodeTimings,
  Model,
  ModelInfo,
  SampleRequest,
  Sampler,
  SamplerOptions,
  TokenizeOptions,
} from '../../worker/engine/addon.js';

export const VOCAB_SIZE = 128;
/** End of sequence: `tokenAt` returning it ends a generation with finish reason `stop`. */
export const EOS = 3;
const STATE_MAGIC = 0xaf143cd8;

/** 'a'..'z' cycling with the position. */
export const letterAt = (position: number): number => 97 + (position % 26);

/** What the fake model generates after `tokens` prompt tokens, `count` of them: the text a test expects. */
export function expectedText(promptTokens: number, count: number, tokenAt = letterAt): string {
  return String.fromCharCode(...Array.from({ length: count }, (_, i) => tokenAt(promptTokens + i)));
}

function coded(code: string, message: string): Error {
  return Object.assign(new Error(message), { code });
}

export class FakeModel implements Model {
  /** Contexts created from this model and not yet disposed. */
  contexts = 0;
  disposed = false;

  constructor(
    readonly path: string,
    /** The token generated at each position. */
    readonly tokenAt: (position: number) => number = letterAt,
  ) {}

  info(): ModelInfo {
    const sizes = { contextLength: 4096, vocabSize: VOCAB_SIZE, embeddingLength: 8, layerCount: 1, headCount: 1, headCountKv: 1, sizeBytes: 1000, parameterCount: 1000 };
    return { architecture: 'fake', name: 'fake', description: 'deterministic fake model', ...sizes, bos: -1, eos: EOS, eot: -1, addBos: false, chatTemplate: null };
  }

  tokenize(text: string, _options?: TokenizeOptions): Int32Array {
    return Int32Array.from(text, (char) => Math.min(char.charCodeAt(0), VOCAB_SIZE - 1));
  }

  tokenizerCache(): { entries: number; bytes: number } {
    return { entries: 0, bytes: 0 };
  }

  detokenize(tokens: Int32Array, options?: { special?: boolean }): string {
    return [...tokens].map((token) => Buffer.from(this.tokenToPiece(token, options)).toString('utf8')).join('');
  }

  tokenToPiece(token: number, options?: { special?: boolean }): Buffer {
    if (token === EOS) return Buffer.from(options?.special === true ? '</s>' : '');
    return Buffer.from(String.fromCharCode(token));
  }

  isEog(token: number): boolean {
    return token === EOS;
  }

  dispose(): void {
    if (this.contexts > 0) throw coded('ERR_BUSY', 'the model has live contexts');
    this.disposed = true;
  }
}

export class FakeSampler implements Sampler {
  /** Tokens it sampled, in order. */
  readonly sampled: number[] = [];
  /** Prompt tokens fed to it. */
  readonly accepted: number[] = [];
  disposed = false;

  constructor(readonly options: SamplerOptions) {
    if (options.grammar !== undefined && !options.grammar.startsWith('root ::=')) throw coded('ERR_GRAMMAR', 'failed to parse grammar');
  }

  accept(tokens: Int32Array): void {
    this.accepted.push(...tokens);
  }

  sampleLogits(logits: Float32Array): number {
    const token = logits.indexOf(Math.max(...logits));
    this.sampled.push(token);
    return token;
  }

  reset(): void {}

  dispose(): void {
    this.disposed = true;
  }
}

interface Cell {
  position: number;
  token: number;
  seqs: Set<number>;
}

/** A decode call as the batch carried it, in plain arrays (for `t.same`), and whether it failed. */
export interface DecodedBatch {
  tokens: number[];
  positions: number[];
  seqIds: number[];
  logits: number[];
  failed?: string;
}

/** Decode calls that fail: those `when` picks (all, by default), `times` of them (default 1). */
export interface DecodeFault {
  code: string;
  times?: number;
  when?: (batch: DecodedBatch) => boolean;
}

export class FakeContext implements Context {
  /** Every decode call, in order. */
  readonly batches: DecodedBatch[] = [];
  /** State exports (stateSeqGet) and imports (stateSeqSet), by sequence id, in order. */
  readonly exports: number[] = [];
  readonly imports: number[] = [];
  /** State imports still to refuse with ERR_STATE_IMPORT, as llama.cpp refuses a state it cannot read. */
  failImports = 0;
  /** Runs while an async call is in flight, for a test to act while the engine awaits it (a client's abort mid-import). */
  whileInFlight: ((call: 'decode' | 'stateSeqGet' | 'stateSeqSet', seq: number) => void) | undefined;
  disposed = false;
  private cells: Cell[] = [];
  private readonly faults: DecodeFault[] = [];
  private busy = false;
  private lastLogits = new Map<number, Float32Array>();
  private readonly counters: DecodeTimings = { decodes: 0, tokens: 0, queuedMs: 0, decodeMs: 0, sampleMs: 0, settleMs: 0 };

  constructor(
    readonly model: FakeModel,
    private readonly options: Required<Pick<ContextOptions, 'nCtx' | 'nSeqMax' | 'nBatch'>>,
  ) {
    model.contexts++;
  }

  info(): ContextInfo {
    const { nCtx, nSeqMax, nBatch } = this.options;
    return { nCtx, nCtxSeq: nCtx, nSeqMax, nBatch, nUbatch: nBatch, threads: 1, threadpool: false, stateBytes: stateBytes(nCtx) };
  }

  timings(): DecodeTimings {
    return { ...this.counters };
  }

  failDecode(fault: DecodeFault): void {
    this.faults.push({ times: 1, ...fault });
  }

  /** The tokens a sequence holds, in position order. */
  tokensOf(seq: number): number[] {
    return this.cellsOf(seq).map((cell) => cell.token);
  }

  /** Cells in use (a shared cell counts once). */
  get usedCells(): number {
    return this.cells.length;
  }

  decode(batch: Batch, samples: SampleRequest[] = []): Promise<Int32Array> {
    this.check();
    const seen: DecodedBatch = { tokens: [...batch.tokens], positions: [...batch.positions], seqIds: [...batch.seqIds], logits: [...batch.logits] };
    this.batches.push(seen);
    return this.inFlight('decode', seen.seqIds[0] ?? -1, () => {
      const fault = this.faults.find((f) => (f.times ?? 1) > 0 && (f.when?.(seen) ?? true));
      if (fault !== undefined) {
        fault.times = (fault.times ?? 1) - 1;
        seen.failed = fault.code;
        throw coded(fault.code, `llama_decode failed (${fault.code})`);
      }
      this.place(seen);
      this.counters.decodes++;
      this.counters.tokens += seen.tokens.length;
      return Int32Array.from(samples, ({ index, sampler }) => sampler.sampleLogits(this.logitsAt(index)));
    });
  }

  stateSeqGet(seq: number): Promise<Uint8Array> {
    this.check();
    this.exports.push(seq);
    const state = encodeState(seq, this.cellsOf(seq));
    return this.inFlight('stateSeqGet', seq, () => state);
  }

  stateSeqSet(seq: number, bytes: Uint8Array): Promise<number> {
    this.check();
    this.imports.push(seq);
    return this.inFlight('stateSeqSet', seq, () => {
      if (this.failImports > 0 && this.failImports-- > 0) throw coded('ERR_STATE_IMPORT', 'state refused');
      const cells = decodeState(bytes);
      this.seqRemoveNow(seq, 0, -1);
      if (this.cells.length + cells.length > this.options.nCtx) throw coded('ERR_STATE_IMPORT', 'no room for the state');
      for (const { position, token } of cells) this.cells.push({ position, token, seqs: new Set([seq]) });
      return bytes.byteLength;
    });
  }

  stateSeqSetFile(): Promise<number> {
    this.check();
    return Promise.reject(coded('ERR_CACHE_FILE_UNREADABLE', 'the fake context reads no files'));
  }

  stateSeqSize(seq: number): number {
    this.check();
    return stateBytes(this.cellsOf(seq).length);
  }

  logitsAt(index: number): Float32Array {
    this.check();
    const logits = this.lastLogits.get(index);
    if (logits === undefined) throw coded('ERR_NO_LOGITS', `no logits at batch index ${index}`);
    return logits.slice();
  }

  seqRemove(seq: number, p0 = 0, p1 = -1): boolean {
    this.check();
    return this.seqRemoveNow(seq, p0, p1);
  }

  seqCopy(src: number, dst: number, p0 = 0, p1 = -1): void {
    this.check();
    for (const cell of this.cells) if (cell.seqs.has(src) && inRange(cell.position, p0, p1)) cell.seqs.add(dst);
  }

  seqPosMax(seq: number): number {
    this.check();
    return this.cellsOf(seq).at(-1)?.position ?? -1;
  }

  seqPosMin(seq: number): number {
    this.check();
    return this.cellsOf(seq)[0]?.position ?? -1;
  }

  clear(): void {
    this.check();
    this.cells = [];
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.model.contexts--;
  }

  private check(): void {
    if (this.disposed) throw new Error('the context is disposed');
    if (this.busy) throw coded('ERR_BUSY', 'another call is in flight on this context');
  }

  /** Runs `work` on a later turn of the event loop, as a libuv pool thread would, refusing other calls meanwhile. */
  private inFlight<T>(call: 'decode' | 'stateSeqGet' | 'stateSeqSet', seq: number, work: () => T): Promise<T> {
    this.busy = true;
    return new Promise<T>((resolve, reject) => {
      setImmediate(() => {
        this.whileInFlight?.(call, seq);
        this.busy = false;
        try {
          resolve(work());
        } catch (error) {
          reject(error as Error);
        }
      });
    });
  }

  private cellsOf(seq: number): Cell[] {
    return this.cells.filter((cell) => cell.seqs.has(seq)).sort((a, b) => a.position - b.position);
  }

  private seqRemoveNow(seq: number, p0: number, p1: number): boolean {
    for (const cell of this.cells) if (inRange(cell.position, p0, p1)) cell.seqs.delete(seq);
    this.cells = this.cells.filter((cell) => cell.seqs.size > 0);
    return true;
  }

  /** Checks the whole batch first, then places it: a failed decode changes nothing (llama.cpp rolls back). */
  private place(batch: DecodedBatch): void {
    if (batch.tokens.length > this.options.nBatch) throw coded('ERR_DECODE', `batch of ${batch.tokens.length} tokens over n_batch ${this.options.nBatch}`);
    if (this.cells.length + batch.tokens.length > this.options.nCtx) throw coded('ERR_KV_NO_SLOT', 'no KV slot for the batch');
    const next = new Map<number, number>();
    batch.seqIds.forEach((seq, i) => {
      const expected = next.get(seq) ?? (this.cellsOf(seq).at(-1)?.position ?? -1) + 1;
      if (batch.positions[i] !== expected) throw coded('ERR_DECODE', `sequence ${seq} continues at ${batch.positions[i]}, not at ${expected}`);
      next.set(seq, expected + 1);
    });
    this.lastLogits = new Map();
    batch.tokens.forEach((token, i) => {
      const position = batch.positions[i] as number;
      this.cells.push({ position, token, seqs: new Set([batch.seqIds[i] as number]) });
      if (batch.logits[i] === 1) this.lastLogits.set(i, oneHot(this.model.tokenAt(position + 1)));
    });
  }
}

export class FakeAddon implements Addon {
  readonly maxParallelSequences = 64;
  readonly models: FakeModel[] = [];
  readonly contexts: FakeContext[] = [];
  readonly samplers: FakeSampler[] = [];
  /** Model paths whose load fails with ERR_MODEL_LOAD. */
  readonly failingPaths = new Set<string>();
  readonly Sampler: new (model: Model, options?: SamplerOptions) => Sampler;

  constructor(private readonly tokenAt: (position: number) => number = letterAt) {
    const samplers = this.samplers;
    this.Sampler = class extends FakeSampler {
      constructor(_model: Model, options: SamplerOptions = {}) {
        super(options);
        samplers.push(this);
      }
    };
  }

  /** Samplers created and not disposed: an engine that leaks one fails the test that checks this. */
  get liveSamplers(): number {
    return this.samplers.filter((sampler) => !sampler.disposed).length;
  }

  loadBackends(): void {}
  setLogLevel(): void {}
  devices = (): [] => [];
  systemInfo = (): string => 'fake';

  loadModel(path: string): Promise<Model> {
    if (this.failingPaths.has(path)) return Promise.reject(coded('ERR_MODEL_LOAD', `failed to load model from ${path}`));
    const model = new FakeModel(path, this.tokenAt);
    this.models.push(model);
    return Promise.resolve(model);
  }

  createContext(model: Model, options: ContextOptions = {}): Promise<Context> {
    const context = new FakeContext(model as FakeModel, { nCtx: options.nCtx ?? 256, nSeqMax: options.nSeqMax ?? 4, nBatch: options.nBatch ?? 64 });
    this.contexts.push(context);
    return Promise.resolve(context);
  }
}

function inRange(position: number, p0: number, p1: number): boolean {
  return position >= Math.max(p0, 0) && (p1 < 0 || position < p1);
}

function oneHot(token: number): Float32Array {
  const logits = new Float32Array(VOCAB_SIZE);
  logits[token] = 1;
  return logits;
}

/**
 * llama.cpp's layout (state-blob.ts), all in 32-bit words: magic, seq id, n_stream 1, cell count,
 * per cell (position, 1, seq id), v_trans 0, n_layer 1; then K and V: type 0, row bytes 4 as a u64
 * (4, 0), and one token per cell.
 */
function stateBytes(cells: number): number {
  return 4 * (12 + 5 * cells);
}

function encodeState(seq: number, cells: Cell[]): Uint8Array {
  const tokens = cells.map((cell) => cell.token);
  const words = [STATE_MAGIC | 0, seq, 1, cells.length, ...cells.flatMap((cell) => [cell.position, 1, seq]), 0, 1, 0, 4, 0, ...tokens, 0, 4, 0, ...tokens];
  return new Uint8Array(Int32Array.from(words).buffer);
}

/** Reads a state this fake exported (or the engine cut or joined from such states); throws ERR_STATE_IMPORT otherwise. */
function decodeState(bytes: Uint8Array): { position: number; token: number }[] {
  const words = new Int32Array(bytes.slice(0, bytes.byteLength - (bytes.byteLength % 4)).buffer);
  const count = words[3] ?? 0;
  if (words[0] !== (STATE_MAGIC | 0) || words[2] !== 1 || bytes.byteLength !== stateBytes(count)) throw coded('ERR_STATE_IMPORT', 'not a state of this fake');
  const tokensAt = 4 + 3 * count + 5;
  return Array.from({ length: count }, (_, i) => ({ position: words[4 + 3 * i] as number, token: words[tokensAt + i] as number }));
}
