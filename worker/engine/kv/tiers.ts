/**
 * Where an idle agent's cache lives, fastest first: hot (its cells still in the context, holding a
 * sequence), RAM (its exported state in host memory), disk (its safetensors file, written behind
 * every completed turn), or nowhere (a miss). Idle agents are spilled down the tiers, least recently
 * used first, when waiting requests need their sequences or blocks, and (spillIdleOwners) when
 * another request starts; a returning agent is promoted back by a state import (RAM, disk) or simply
 * keeps its cells (hot).
 *
 * Why not keep every idle agent hot: attention in a llama.cpp step spans the occupied cells, so idle
 * agents parked in KV slow every active one; a RAM restore is a memcpy and costs milliseconds.
 */
import type { Context } from '../addon.js';
import type { DiskTier } from '../../persistence/disk-tier.js';
import type { BlockPool } from './block-pool.js';
import { HotCache, type HotEntry } from './hot-cache.js';
import { RamCache } from './ram-cache.js';
import type { RamEntry } from './ram-entry.js';
import { statePrefix } from './state-blob.js';
import { EXPORT_PIECE_CELLS, PieceExport, WRITE_BUSY_LIMIT_MS, WRITE_DELAY_MS, type PendingWrite } from './write-behind.js';
import { PrefixIndex } from './prefix-index.js';
import type { CacheTierName } from '../../../shared/protocol/messages.js';

/** A returning agent's saved cache: the tokens it holds, the logits after them, and how to import its state into a sequence. */
export interface SavedState {
  tokens: Int32Array;
  logits: Float32Array;
  importInto(seqId: number): Promise<void>;
  /**
   * Imports only the cells at positions [0, keep), cut from the state first (state-blob.ts), so no
   * room is needed for the rest; false when the state cannot be cut here (import it whole instead).
   */
  importPrefix(seqId: number, keep: number): Promise<boolean>;
}

/** How to get a returning agent's saved state, and from which tier; `shared`: another agent's. */
export interface RestoreSource {
  tier: 'ram' | 'disk';
  shared?: boolean;
  load: () => Promise<SavedState | null>;
}

/** The part of admission the tiers need: freeing a spilled agent's sequence and blocks. */
export interface SequenceReleaser {
  readonly pool: BlockPool;
  releaseSequence(seqId: number): void;
}

/**
 * Own cells below which an idle agent stays in the context when another request starts: llama.cpp
 * pads the span of cells attention covers to 256 without flash attention, so fewer rarely narrow it.
 */
export const SPILL_MIN_OWN_CELLS = 256;

export class AgentTiers {
  readonly hot = new HotCache();
  readonly ram: RamCache;
  /** Every agent's cached tokens in any tier, for prefix sharing (shared-prefix.ts). */
  readonly prefixes: PrefixIndex;
  /**
   * Finished turns to be written to the disk tier, by agent. Every turn waits the same delay and is
   * re-inserted when scheduled (a spill to RAM replaces the value in place), so the Map's order is due order.
   */
  private readonly pendingWrites = new Map<string, PendingWrite>();
  private busyAt = -Infinity;
  /** An idle agent's cache left a tier by need (metrics): where it went; `none`: no tier kept it. */
  onEvicted: (from: 'hot' | 'ram', to: 'ram' | 'disk' | 'none') => void = () => undefined;

  constructor(
    private readonly context: Context,
    private readonly sequences: SequenceReleaser,
    ramBudgetBytes: number,
    readonly disk: DiskTier | undefined,
    /** Learns of each completed cache file write. */
    private readonly onWritten: (agentId: string, bytes: number) => void,
    prefixBlockTokens = 16,
    /** A sequence id no request uses (unified KV only): where part of an agent's cells is exported from. */
    private readonly scratchSeq?: number,
  ) {
    this.ram = new RamCache(ramBudgetBytes, prefixBlockTokens, undefined, (entry, state) => this.writeEvicted(entry, state));
    this.prefixes = new PrefixIndex(prefixBlockTokens);
    // Files found at startup become findable as their headers are read (unless a newer turn was indexed first).
    if (disk !== undefined) disk.onLearned = (agentId, tokens, scope) => this.prefixes.has(agentId) || this.prefixes.set(agentId, scope, tokens);
  }

  /** Blocks held by idle agents: what spilling could free. */
  get spillableBlocks(): number {
    return this.sequences.pool.freedBy([...this.hot.entries()].map((entry) => entry.seqId));
  }

  /** Parks a finished turn's cells as the agent's hot cache, and schedules its write-behind unless `persist` is false (worthWriting). */
  park(agentId: string, seqId: number, tokens: Int32Array, logits: Float32Array, now: number, scope?: string, persist = true): void {
    const entry = this.hot.put(agentId, seqId, tokens, logits, Date.now(), scope);
    this.prefixes.set(agentId, scope, tokens);
    this.dropPending(agentId);
    if (this.disk === undefined || !persist) return;
    this.pendingWrites.set(agentId, { tier: 'hot', entry, due: now + WRITE_DELAY_MS });
  }

  /** The engine had a request running or waiting at `now`: write-behind waits for a quiet moment (WRITE_BUSY_LIMIT_MS). */
  markBusy(now: number): void {
    this.busyAt = now;
  }

  /** When the next scheduled write may go (undefined: none). Read at every step: O(1). */
  get nextWriteDue(): number | undefined {
    const due = this.pendingWrites.values().next().value?.due;
    return due === undefined ? undefined : this.writableAt(due);
  }

  private writableAt(due: number): number {
    return Math.max(due, Math.min(this.busyAt + WRITE_DELAY_MS, due + WRITE_BUSY_LIMIT_MS));
  }

  /**
   * Exports every due turn whose agent is still idle with that turn's cells, and writes it behind;
   * returns how many were written. While the engine is busy (a write past WRITE_BUSY_LIMIT_MS) one
   * call exports at most EXPORT_PIECE_CELLS cells; the rest of the export goes on at the next boundary.
   */
  async writeDue(now: number): Promise<number> {
    const cellBudget = now - this.busyAt < WRITE_DELAY_MS ? EXPORT_PIECE_CELLS : Infinity;
    let written = 0;
    for (const [agentId, pending] of [...this.pendingWrites]) {
      if (this.writableAt(pending.due) > now) break; // the rest are due later still
      if (pending.tier === 'ram') {
        this.pendingWrites.delete(agentId);
        if (this.ram.peek(agentId) !== pending.entry) continue; // back: its next turn writes
        const state = this.ram.stateOf(pending.entry);
        this.write(pending.entry, state === pending.entry.own ? state.slice() : state); // the writer takes its buffer
        written++;
        continue;
      }
      if (this.hot.peek(agentId) !== pending.entry) {
        this.dropPending(agentId); // back, or spilled: its next turn or its RAM entry writes
        continue;
      }
      const outcome = await this.writeBehind(pending, cellBudget);
      if (outcome !== 'later') this.pendingWrites.delete(agentId);
      if (outcome === 'written') written++;
      if (Number.isFinite(cellBudget)) return written; // one piece a boundary while busy
    }
    return written;
  }

  /** A pending write leaves the queue; a hot export under way gives its plan back. */
  private dropPending(agentId: string): void {
    const pending = this.pendingWrites.get(agentId);
    this.pendingWrites.delete(agentId);
    if (pending?.tier === 'hot' && pending.export !== undefined) this.disk?.cancel(pending.export.planned);
  }

  /** The RAM budget pushed out an entry whose turn is not on disk yet: it is written now. */
  private writeEvicted(entry: RamEntry, state: () => Uint8Array): void {
    const unwritten = this.pendingWrites.get(entry.agentId)?.entry === entry;
    this.onEvicted('ram', unwritten || this.disk?.has(entry.agentId) === true ? 'disk' : 'none');
    if (!unwritten) return;
    this.pendingWrites.delete(entry.agentId);
    this.write(entry, state().slice());
  }

  /** A drain: every idle agent's unwritten turn is written now, and every write is waited for. */
  async persistAll(): Promise<number> {
    const written = await this.writeDue(Infinity);
    await this.disk?.flush();
    return written;
  }

  /**
   * Spills the least recently used idle agent: its state goes to the RAM tier (when the tier is on)
   * and, if its turn was not written yet, to the disk tier; its sequence and blocks are freed. False
   * when no agent is idle.
   */
  async spillLeastRecent(): Promise<boolean> {
    const entry = this.hot.takeLeastRecent();
    if (entry === undefined) return false;
    await this.spill(entry);
    return true;
  }

  /**
   * Another agent's request started: idle agents leave the context (spilled) when most of their
   * cells serve no running request and together they hold at least `minOwnCells` such cells. Without
   * flash attention each step's attention spans every occupied cell, so idle cells slow all the work
   * that follows (a 256-token prefill by a third with 1,300 idle cells beside it), while an export
   * costs about one step. An agent whose prefix a running request joined stays: dropping it would
   * free only its few own cells. Returns how many were spilled.
   */
  async spillIdleOwners(minOwnCells = SPILL_MIN_OWN_CELLS): Promise<number> {
    if (this.hot.size === 0) return 0;
    const { pool } = this.sequences;
    const idle = [...this.hot.entries()];
    const running = pool.blocksOutside(new Set(idle.map((entry) => entry.seqId)));
    const owners = idle.filter((entry) => {
      const blocks = pool.blocksOf(entry.seqId);
      return 2 * blocks.filter((block) => !running.has(block)).length >= blocks.length;
    });
    if (pool.freedBy(owners.map((entry) => entry.seqId)) * pool.blockSize < minOwnCells) return 0;
    for (const entry of owners) {
      this.hot.take(entry.agentId);
      await this.spill(entry);
    }
    return owners.length;
  }

  /**
   * The entry (already taken from the hot tier) goes to RAM when the tier is on; a turn not written
   * yet stays pending there, or goes to disk at once when RAM did not keep it.
   */
  private async spill(entry: HotEntry): Promise<void> {
    const pending = this.pendingWrites.get(entry.agentId);
    const unwritten = pending?.entry === entry;
    const toRam = this.ram.budgetBytes > 0;
    const state = toRam || unwritten ? await this.exportState(entry) : undefined;
    const kept = state !== undefined && toRam ? this.ram.put(entry.agentId, entry.tokens, state, entry.logits, entry.usedAt, entry.scope) : undefined;
    this.onEvicted('hot', kept !== undefined ? 'ram' : (unwritten && state !== undefined) || this.disk?.has(entry.agentId) === true ? 'disk' : 'none');
    if (unwritten) this.dropPending(entry.agentId);
    if (unwritten && kept !== undefined) this.pendingWrites.set(entry.agentId, { tier: 'ram', entry: kept, due: pending.due });
    else if (unwritten) {
      if (state !== undefined) this.write(entry, state); // RAM did not keep it: the writer may take its buffer
    }
    this.drop(entry);
  }

  /**
   * The Agents API's `evict_only`: drops an idle agent from hot and RAM but keeps its disk file,
   * writing its latest turn first when the file does not hold it yet, and waits for that write, so
   * that its next turn is restored from disk. Returns the tiers it left.
   */
  evict(agentId: string): Promise<CacheTierName[]> {
    return this.clear(agentId, new Set(['hot', 'ram']));
  }

  /** The Agents API's delete: the idle agent leaves every tier, its file deleted; returns the tiers it left. */
  forget(agentId: string): Promise<CacheTierName[]> {
    return this.clear(agentId, new Set(['hot', 'ram', 'disk']));
  }

  /**
   * An idle agent leaves the tiers named (the admin API's cache clear; evict and forget). While the
   * disk tier is kept, what the cleared tiers held that its file lacks is written first (the hot
   * turn not written yet, a RAM state with no file) and waited for: clearing the fast tiers never
   * loses the agent's last turn. Returns the tiers it left.
   */
  async clear(agentId: string, tiers: ReadonlySet<CacheTierName>): Promise<CacheTierName[]> {
    const keepDisk = !tiers.has('disk');
    const left: CacheTierName[] = [];
    const hot = tiers.has('hot') ? this.hot.take(agentId) : undefined;
    if (hot !== undefined) {
      const unwritten = keepDisk && this.pendingWrites.get(agentId)?.entry === hot;
      const state = unwritten ? await this.exportState(hot) : undefined;
      if (state !== undefined) this.write(hot, state);
      this.dropPending(agentId);
      this.drop(hot);
      left.push('hot');
    }
    const saved = tiers.has('ram') ? this.ram.take(agentId) : undefined;
    if (saved !== undefined) {
      const unwritten = this.pendingWrites.get(agentId)?.entry === saved;
      if (unwritten) this.pendingWrites.delete(agentId);
      if (keepDisk && (unwritten || this.disk?.has(agentId) === false)) this.write(saved, this.ram.stateOf(saved));
      left.push('ram');
    }
    if (!keepDisk && (await this.disk?.forget(agentId)) === true) left.push('disk');
    if (!keepDisk) this.prefixes.remove(agentId);
    await this.disk?.settled(agentId);
    return left;
  }

  /** Frees an idle agent's cells, sequence and blocks without saving them. */
  drop(entry: HotEntry): void {
    this.context.seqRemove(entry.seqId);
    this.sequences.releaseSequence(entry.seqId);
  }

  /**
   * The RAM tier first, then the disk tier. The RAM entry is taken: the agent's new turn supersedes
   * it. A disk state is imported straight from its file by the addon, which checks the file's
   * checksum as it goes; a file that fails is quarantined (and the turn is a miss).
   */
  savedCacheOf(agentId: string): RestoreSource | undefined {
    const saved = this.ram.take(agentId);
    if (saved !== undefined) return this.ramSource(saved, false);
    return this.disk?.mayHave(agentId) === true ? this.diskSource(agentId, false) : undefined;
  }

  /**
   * Another agent's saved state, for a prefix of it (its tier entry is left in place, and its file
   * only read): what prefix sharing imports when that agent's cells are no longer in the context.
   */
  sharedSourceOf(agentId: string, tier: 'ram' | 'disk'): RestoreSource | undefined {
    const saved = tier === 'ram' ? this.ram.peek(agentId) : undefined;
    if (saved !== undefined) return this.ramSource(saved, true);
    return tier === 'disk' && this.disk?.has(agentId) === true ? this.diskSource(agentId, true) : undefined;
  }

  private ramSource(saved: RamEntry, shared: boolean): RestoreSource {
    const importInto = async (seqId: number): Promise<void> => void (await this.context.stateSeqSet(seqId, this.ram.stateOf(saved)));
    const importPrefix = async (seqId: number, keep: number): Promise<boolean> => {
      const cut = this.ram.prefixStateOf(saved, keep);
      if (cut !== undefined) await this.context.stateSeqSet(seqId, cut);
      return cut !== undefined;
    };
    return { tier: 'ram', shared, load: () => Promise.resolve({ tokens: saved.tokens, logits: saved.logits, importInto, importPrefix }) };
  }

  /**
   * The file is imported whole from a mapping (the addon checks its checksum), or read and cut to a
   * prefix. A file on a shared segment holds only its own cells: it is read joined to the segment's.
   */
  private diskSource(agentId: string, shared: boolean): RestoreSource {
    const disk = this.disk as DiskTier;
    const load = async (): Promise<SavedState | null> => {
      const found = await disk.inspect(agentId);
      if (found === null) return null;
      const importInto = async (seqId: number): Promise<void> => {
        if (found.onSegment) {
          const state = await disk.readState(agentId);
          if (state === null) throw new Error(`the cache file of ${agentId} could not be read with its shared prefix`);
          return void (await this.context.stateSeqSet(seqId, state));
        }
        await this.context.stateSeqSetFile(seqId, found.file).catch(async (error: unknown) => {
          if (String((error as { code?: unknown }).code).startsWith('ERR_CACHE_FILE')) await disk.quarantine(agentId);
          throw error;
        });
      };
      const importPrefix = async (seqId: number, keep: number): Promise<boolean> => {
        const state = await disk.readState(agentId);
        const cut = state === null ? undefined : statePrefix(state, keep);
        if (cut !== undefined) await this.context.stateSeqSet(seqId, cut);
        return cut !== undefined;
      };
      return { tokens: found.tokens, logits: found.logits, importInto, importPrefix };
    };
    return { tier: 'disk', shared, load };
  }

  /**
   * Exports a finished turn, within `cellBudget` cells, and writes it once whole. When its first
   * cells already sit in a segment file, only the cells past it are exported: a coding agent's turn
   * on a 15K-token shared prefix exports its own few hundred cells, not 184 MB. With a scratch
   * sequence (unified KV) the cells go in pieces (write-behind.ts); without, in one export.
   */
  private async writeBehind(pending: PendingWrite & { tier: 'hot' }, cellBudget: number): Promise<'written' | 'later' | 'failed'> {
    const { disk, scratchSeq } = this;
    const { entry } = pending;
    if (pending.export === undefined) {
      const planned = disk?.planWrite(entry.agentId, entry.tokens, entry.scope);
      if (planned === undefined) return 'failed';
      const pieces = scratchSeq === undefined ? undefined : new PieceExport(this.context, scratchSeq, entry.seqId, planned.ownFrom, entry.tokens.length);
      pending.export = { planned, pieces };
    }
    const { planned, pieces } = pending.export;
    const state = pieces === undefined ? await this.exportState(entry) : (await pieces.advance(cellBudget)) ? pieces.states : undefined;
    if (state === undefined) {
      this.dropPending(entry.agentId);
      return 'failed';
    }
    if (pieces !== undefined && !pieces.done) return 'later';
    this.reportWrite(entry.agentId, (disk as DiskTier).writePlanned(planned, state, entry.logits, planned.ownFrom > 0 && pieces !== undefined));
    return 'written';
  }

  /** Export failed: the agent's next turn comes from another tier or is a miss, never a wrong answer. */
  private async exportState(entry: HotEntry): Promise<Uint8Array | undefined> {
    return this.context.stateSeqGet(entry.seqId).catch(() => undefined);
  }

  /**
   * Write-behind: the buffer is transferred to the writer thread, not copied. A failed write leaves
   * the previous file or none: a later miss, never a wrong answer. 0 bytes: the state alone is over
   * the disk budget and was not written.
   */
  private write(entry: Pick<HotEntry, 'agentId' | 'tokens' | 'logits' | 'scope'>, state: Uint8Array): void {
    if (this.disk !== undefined) this.reportWrite(entry.agentId, this.disk.persist(entry.agentId, entry.tokens, state, entry.logits, entry.scope));
  }

  private reportWrite(agentId: string, written: Promise<number>): void {
    written.then(
      (bytes) => bytes > 0 && this.onWritten(agentId, bytes),
      () => undefined,
    );
  }
}
