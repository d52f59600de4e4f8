/**
 * Write-behind's schedule and its exports. A finished turn's state is exported for the disk tier a
 * bounded number of cells at a time while requests run. An export holds the context, and llama.cpp
 * exports whole sequences only, in time proportional to their cells (a 15K-token coding agent: about
 * half a second without flash attention, whose V cache is written transposed in many small copies).
 * Write-behind that falls due while requests run would stall them all for that long at one step
 * boundary; exported piece by piece through the scratch sequence, each boundary pays for one piece
 * instead. The pieces are joined by the writer thread, off this one.
 */
import type { Context } from '../addon.js';
import type { PlannedWrite } from '../../persistence/disk-tier.js';
import type { HotEntry } from './hot-cache.js';
import type { RamEntry } from './ram-entry.js';

/**
 * How long a finished turn waits, idle, before its state is exported for the disk tier. An export
 * holds the context (tens of ms for a few thousand tokens), so an agent that comes straight back —
 * a tool call's round trip — would wait for it; if it comes back within the delay its export is
 * skipped and its next turn, a superset, is written instead. A spill to the RAM tier keeps the write
 * pending, written from RAM when due (or when the RAM budget pushes the entry out); a spill with the RAM
 * tier off writes at once.
 */
export const WRITE_DELAY_MS = 250;

/**
 * A due write also waits until the engine has been quiet (no request running or waiting) for
 * WRITE_DELAY_MS, so that it never holds the context while a request waits for its first token;
 * under unbroken load it goes this long after its due time anyway, which bounds what a crash (not
 * a drain, which writes everything) can lose. Turns superseded meanwhile are never exported.
 */
export const WRITE_BUSY_LIMIT_MS = 5000;

/**
 * Tokens from which a one-shot turn is written to the disk tier though its conversation never came
 * back. A one-shot turn: its agent id was derived from the conversation's opening (no id sent) and
 * it started without its own cache, so nothing says anyone will send that conversation again. A
 * stateless client's flood is mostly such turns: writing each one cost a file per request, and the
 * LRU disk budget then evicted the named agents' files, which do come back, to hold them. A short
 * one-shot is cheap to prefill again; a long one (a document pasted in) is worth the file.
 */
export const ONE_SHOT_WRITE_TOKENS = 1024;

/**
 * Whether a finished turn goes to the disk tier: every named agent's turn does (agents' memory
 * survives restarts); a derived agent's once its conversation came back (the turn started from its
 * own cache) or once it holds ONE_SHOT_WRITE_TOKENS tokens. The hot and RAM tiers keep every turn
 * either way: they are bounded by their own budgets and give a returning conversation its prefix.
 */
export function worthWriting(turn: { derived: boolean; returned: boolean; tokens: number }): boolean {
  return !turn.derived || turn.returned || turn.tokens >= ONE_SHOT_WRITE_TOKENS;
}

/**
 * A finished turn not yet in its cache file, with the entry that holds its state: the hot entry it was
 * parked as (with its export, once started), or the RAM entry it was spilled to (the
 * write stays behind, off the request that spilled it).
 */
export type PendingWrite = { due: number } & ({ tier: 'hot'; entry: HotEntry; export?: HotExport } | { tier: 'ram'; entry: RamEntry });

/** A hot turn's write under way: its plan (which holds a segment until it ends) and the cells exported so far. */
interface HotExport {
  planned: PlannedWrite;
  pieces: PieceExport | undefined;
}

/**
 * Cells one boundary exports while requests are running: about one decode step's time on a 2-core
 * CPU for a 0.5B model (12 KiB a cell, some 30 ms), so a due write delays each step by at most one step.
 */
export const EXPORT_PIECE_CELLS = 1024;

export class PieceExport {
  private readonly pieces: Uint8Array[] = [];
  private next: number;

  constructor(
    private readonly context: Pick<Context, 'seqCopy' | 'seqRemove' | 'stateSeqGet'>,
    /** A sequence id no request uses: each piece's cells join it, are exported from it, and leave it. */
    private readonly scratchSeq: number,
    private readonly seqId: number,
    /** Positions [from, end) are exported: the agent's cells past what a segment file holds already. */
    from: number,
    private readonly end: number,
  ) {
    this.next = from;
  }

  get done(): boolean {
    return this.next >= this.end;
  }

  /** The pieces in position order, once done: one state between them, joined where they are written. */
  get states(): readonly Uint8Array[] {
    return this.pieces;
  }

  /** Exports the next piece, of at most `cells` positions (Infinity: the rest); false when llama.cpp failed to export it. */
  async advance(cells: number): Promise<boolean> {
    const to = Math.min(this.end, this.next + Math.max(1, cells));
    const piece = await this.exportRange(this.next, to);
    if (piece === undefined) return false;
    this.pieces.push(piece);
    this.next = to;
    return true;
  }

  private async exportRange(from: number, to: number): Promise<Uint8Array | undefined> {
    this.context.seqCopy(this.seqId, this.scratchSeq, from, to === this.end ? -1 : to);
    try {
      return await this.context.stateSeqGet(this.scratchSeq);
    } catch {
      return undefined;
    } finally {
      this.context.seqRemove(this.scratchSeq);
    }
  }
}
