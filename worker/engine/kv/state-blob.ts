/**
 * Reads and rebuilds llama.cpp's sequence-state blobs (llama_state_seq_get_data, plain KV cache) so
 * that a saved state can be cut to a prefix, or put together from a shared prefix and an agent's own
 * suffix, before it is imported. llama.cpp has no call that exports or imports a range of positions,
 * and an import replaces the sequence's cells, so a prefix of another agent's saved state would
 * otherwise cost importing all of it (room for every cell) and dropping the rest.
 *
 * Layout (llama-kv-cache.cpp state_write, the same in v0.4.0 and v0.5.0): u32 magic, i32 seq id, u32 n_stream; per stream
 * u32 cell_count, then for each cell i32 pos, u32 n_seq_id (1), n_seq_id × i32 seq id; then u32
 * v_trans, u32 n_layer; per layer i32 k_type, u64 k_row_bytes, cell_count K rows; then V per layer:
 * rows (i32 type, u64 row bytes, cell_count rows) or, transposed, i32 type, u32 element bytes, u32
 * n_embd_v, then for each of the n_embd_v elements that element of every cell. Cells are in cell
 * order, not position order, so cells are always chosen by position. A blob this file cannot read
 * exactly to its last byte (a model with per-cell extras, an unknown cache type) is refused, and the
 * caller falls back to importing it whole.
 */

const MAGIC = 0xaf143cd8;

interface Section {
  /** The i32 type and row/element sizes as written, copied into a rebuilt blob unchanged. */
  head: Uint8Array;
  /** Where the first cell's bytes start. */
  offset: number;
  /** Bytes per cell per run (a whole row, or one element when transposed). */
  cellBytes: number;
  /** Runs of cell data: 1 for rows, n_embd_v for transposed V. */
  runs: number;
}

export interface ParsedState {
  bytes: Uint8Array;
  nStream: number;
  /** The one stream that holds cells (a sequence lives in one stream). */
  stream: number;
  positions: Int32Array;
  vTrans: number;
  nLayer: number;
  k: Section[];
  v: Section[];
}

export class StateBlobError extends Error {}

class Reader {
  offset = 0;
  private readonly view: DataView;
  constructor(readonly bytes: Uint8Array) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  need(n: number): void {
    if (this.offset + n > this.bytes.byteLength) throw new StateBlobError('the state ends early');
  }
  u32(): number {
    this.need(4);
    const value = this.view.getUint32(this.offset, true);
    this.offset += 4;
    return value;
  }
  i32(): number {
    this.need(4);
    const value = this.view.getInt32(this.offset, true);
    this.offset += 4;
    return value;
  }
  u64(): number {
    this.need(8);
    const value = Number(this.view.getBigUint64(this.offset, true));
    this.offset += 8;
    return value;
  }
  skip(n: number): void {
    this.need(n);
    this.offset += n;
  }
}

function section(reader: Reader, cells: number, transposed: boolean): Section {
  const start = reader.offset;
  reader.i32();
  const [cellBytes, runs] = transposed ? [reader.u32(), reader.u32()] : [reader.u64(), 1];
  const head = reader.bytes.subarray(start, reader.offset);
  const offset = reader.offset;
  reader.skip(cellBytes * cells * runs);
  return { head, offset, cellBytes, runs };
}

/** Parses a blob holding one sequence's cells; throws StateBlobError for anything else. */
export function parseState(bytes: Uint8Array): ParsedState {
  const reader = new Reader(bytes);
  if (reader.u32() !== MAGIC) throw new StateBlobError('not a sequence state');
  reader.i32();
  const nStream = reader.u32();
  let found: Omit<ParsedState, 'bytes' | 'nStream'> | undefined;
  for (let s = 0; s < nStream; s++) {
    const cells = reader.u32();
    if (cells === 0) continue;
    if (found !== undefined) throw new StateBlobError('cells in more than one stream');
    const positions = new Int32Array(cells);
    for (let i = 0; i < cells; i++) {
      positions[i] = reader.i32();
      if (reader.u32() !== 1) throw new StateBlobError('a cell of several sequences');
      reader.i32();
    }
    const vTrans = reader.u32();
    const nLayer = reader.u32();
    const k = Array.from({ length: nLayer }, () => section(reader, cells, false));
    const v = Array.from({ length: nLayer }, () => section(reader, cells, vTrans === 1));
    found = { stream: s, positions, vTrans, nLayer, k, v };
  }
  if (reader.offset !== bytes.byteLength) throw new StateBlobError('bytes left after the last stream');
  if (found === undefined) return { bytes, nStream, stream: 0, positions: new Int32Array(0), vTrans: 0, nLayer: 0, k: [], v: [] };
  return { bytes, nStream, ...found };
}

/** The cells of one parsed state to put in a rebuilt blob, by index in that state. */
export interface CellPick {
  state: ParsedState;
  cells: number[];
}

/** Indexes of the cells whose position is in [from, to), in position order. */
export function cellsInRange(state: ParsedState, from: number, to: number): number[] {
  const picked: number[] = [];
  state.positions.forEach((pos, i) => pos >= from && pos < to && picked.push(i));
  return picked.sort((a, b) => (state.positions[a] as number) - (state.positions[b] as number));
}

function sameShape(a: ParsedState, b: ParsedState): boolean {
  if (a.nStream !== b.nStream || a.vTrans !== b.vTrans || a.nLayer !== b.nLayer) return false;
  const heads = (s: ParsedState): string => [...s.k, ...s.v].map((x) => Buffer.from(x.head).toString('hex')).join();
  return heads(a) === heads(b);
}

/**
 * One blob holding the picked cells, in the order given, in the first piece's stream: what
 * llama_state_seq_set_data imports into any sequence (it reads the cells of one stream into the
 * destination's). Every piece must come from the same context layout.
 */
export function buildState(pieces: CellPick[]): Uint8Array {
  const first = pieces.find((p) => p.state.nLayer > 0)?.state;
  const count = pieces.reduce((n, p) => n + p.cells.length, 0);
  if (first === undefined || count === 0) throw new StateBlobError('no cells to build a state from');
  if (!pieces.every((p) => p.cells.length === 0 || sameShape(p.state, first))) throw new StateBlobError('pieces of different layouts');
  const sectionBytes = (s: Section): number => s.head.byteLength + s.cellBytes * s.runs * count;
  const total = 12 + 4 * first.nStream + count * 12 + 8 + [...first.k, ...first.v].reduce((n, s) => n + sectionBytes(s), 0);
  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  let at = 0;
  const u32 = (value: number): void => void (view.setUint32(at, value, true), (at += 4));
  u32(MAGIC);
  u32(0);
  u32(first.nStream);
  for (let s = 0; s < first.nStream; s++) {
    if (s !== first.stream) {
      u32(0);
      continue;
    }
    u32(count);
    for (const { state, cells } of pieces) {
      for (const i of cells) {
        u32(state.positions[i] as number);
        u32(1);
        u32(0);
      }
    }
    u32(first.vTrans);
    u32(first.nLayer);
    const copyRuns = (which: 'k' | 'v', layer: number): void => {
      const layout = first[which][layer] as Section;
      out.set(layout.head, at);
      at += layout.head.byteLength;
      for (let run = 0; run < layout.runs; run++) {
        for (const { state, cells } of pieces) at = copyCells(out, at, state, state[which][layer] as Section, run, cells);
      }
    };
    for (let layer = 0; layer < first.nLayer; layer++) copyRuns('k', layer);
    for (let layer = 0; layer < first.nLayer; layer++) copyRuns('v', layer);
  }
  return out;
}

/** Copies the picked cells' bytes of one run, merging neighbouring cells into one copy. */
function copyCells(out: Uint8Array, at: number, state: ParsedState, layout: Section, run: number, cells: number[]): number {
  const cellCount = state.positions.length;
  const base = layout.offset + run * cellCount * layout.cellBytes;
  for (let i = 0; i < cells.length;) {
    const first = cells[i] as number;
    let n = 1;
    while (i + n < cells.length && cells[i + n] === first + n) n++;
    const from = base + first * layout.cellBytes;
    out.set(state.bytes.subarray(from, from + n * layout.cellBytes), at);
    at += n * layout.cellBytes;
    i += n;
  }
  return at;
}

/** The state cut to its cells at positions [from, to); undefined when it has none there or cannot be read here. */
export function stateCells(bytes: Uint8Array, from: number, to: number): Uint8Array | undefined {
  try {
    const state = parseState(bytes);
    const cells = cellsInRange(state, from, to);
    return cells.length === 0 ? undefined : buildState([{ state, cells }]);
  } catch (error) {
    if (error instanceof StateBlobError) return undefined;
    throw error;
  }
}

/** The state cut to its cells at positions [0, keep), or undefined when the blob cannot be read here. */
export function statePrefix(bytes: Uint8Array, keep: number): Uint8Array | undefined {
  return stateCells(bytes, 0, keep);
}

/**
 * One state holding every cell of each state in turn (a shared prefix and an agent's own, or the
 * pieces of one export); throws StateBlobError.
 */
export function joinStates(...states: Uint8Array[]): Uint8Array {
  return buildState(states.map(parseState).map((state) => ({ state, cells: cellsInRange(state, 0, Infinity) })));
}
