/**
 * Where an idle agent's cache lives, fastest first: hot (its cells still in the context, holding a
 * sequence), RAM (its exported state in host memory), disk (its safetensors file, written behind
 * every completed turn), or nowhere (a miss). Idle agents are spilled down the tiers, least recently
 * used first, when waiting requests need their sequences or blocks; a returning agent is promoted
 * back by a state import (RAM, disk) or simply keeps its cells (hot).
 *
 * Why not keep every idle agent hot: attention in a llama.cpp step spans the occupied cells, so idle
 * agents parked in KV slow every active one; a RAM restore is a memcpy and costs milliseconds.
 */
import type { Context } from '../addon.js';
import type { DiskTier } from '../../persistence/disk-tier.js';
import type { BlockPool } from './block-pool.js';
import { HotCache, type HotEntry } from './hot-cache.js';
import { RamCache } from './ram-cache.js';

export interface SavedState {
  tokens: Int32Array;
  state: Uint8Array;
}

/** How to get a returning agent's saved state, and from which tier. */
export interface RestoreSource {
  tier: 'ram' | 'disk';
  load: () => Promise<SavedState | null>;
}

/** The part of admission the tiers need: freeing a spilled agent's sequence and blocks. */
export interface SequenceReleaser {
  readonly pool: BlockPool;
  releaseSequence(seqId: number): void;
}

export class AgentTiers {
  readonly hot = new HotCache();
  readonly ram: RamCache;

  constructor(
    private readonly context: Context,
    private readonly sequences: SequenceReleaser,
    ramBudgetBytes: number,
    readonly disk?: DiskTier,
  ) {
    this.ram = new RamCache(ramBudgetBytes);
  }

  /** Blocks held by idle agents: what spilling could free. */
  get spillableBlocks(): number {
    let blocks = 0;
    for (const entry of this.hot.entries()) blocks += this.sequences.pool.blocksOf(entry.seqId).length;
    return blocks;
  }

  /**
   * Spills the least recently used idle agent: its state goes to the RAM tier (when the tier is on)
   * and its sequence and blocks are freed. False when no agent is idle.
   */
  async spillLeastRecent(): Promise<boolean> {
    const entry = this.hot.takeLeastRecent();
    if (entry === undefined) return false;
    if (this.ram.budgetBytes > 0) {
      try {
        this.ram.put(entry.agentId, entry.tokens, await this.context.stateSeqGet(entry.seqId));
      } catch {
        // Export failed: the agent's next turn comes from disk or is a miss, never a wrong answer.
      }
    }
    this.drop(entry);
    return true;
  }

  /** Frees an idle agent's cells, sequence and blocks without saving them. */
  drop(entry: HotEntry): void {
    this.context.seqRemove(entry.seqId);
    this.sequences.releaseSequence(entry.seqId);
  }

  /** The RAM tier first, then the disk tier. The RAM entry is taken: the agent's new turn supersedes it. */
  savedCacheOf(agentId: string): RestoreSource | undefined {
    const saved = this.ram.take(agentId);
    if (saved !== undefined) return { tier: 'ram', load: () => Promise.resolve(saved) };
    const disk = this.disk;
    if (disk?.has(agentId) === true) return { tier: 'disk', load: () => disk.load(agentId) };
    return undefined;
  }

  /**
   * Exports an idle agent's state and hands it to the disk tier (write-behind: the buffer is
   * transferred to the writer thread). Resolves once the export is done, not the write; `written`
   * learns of the write.
   */
  async persist(entry: HotEntry, written: (bytes: number) => void): Promise<void> {
    const disk = this.disk;
    if (disk === undefined) return;
    let state: Uint8Array;
    try {
      state = await this.context.stateSeqGet(entry.seqId);
    } catch {
      return; // export failed: nothing written for this turn, the previous file stays
    }
    // A failed write leaves the previous file or none: a later miss, never a wrong answer. 0 bytes:
    // the state alone is over the disk budget and was not written.
    disk.persist(entry.agentId, entry.tokens, state).then(
      (bytes) => bytes > 0 && written(bytes),
      () => undefined,
    );
  }
}
