/** A disk tier in memory for unit tests of the tiers and the Agents API: files by agent, and the writes asked for in order. */
import type { DiskEntry } from '../../worker/persistence/disk-index.js';

export class FakeDisk {
  readonly files = new Map<string, DiskEntry>();
  readonly writes: string[] = [];
  readonly budgetBytes = 5000;
  has = (agentId: string): boolean => this.files.has(agentId);
  mayHave = this.has;
  entries = (): DiskEntry[] => [...this.files.values()];
  settled = (): Promise<void> => Promise.resolve();
  flush = (): Promise<void> => Promise.resolve();
  persist(agentId: string, held: Int32Array, state: Uint8Array): Promise<number> {
    this.writes.push(agentId);
    this.files.set(agentId, { agentId, bytes: state.byteLength + 100, lastUsed: 3_000, tokens: held.length });
    return Promise.resolve(state.byteLength + 100);
  }
  /** No segments here: every planned write holds its whole state. */
  planWrite(agentId: string, tokens: Int32Array): { agentId: string; tokens: Int32Array; ownFrom: number } {
    return { agentId, tokens, ownFrom: 0 };
  }
  /** The pieces the tiers exported, for each planned write, in order. */
  readonly pieces: number[][] = [];
  writePlanned(planned: { agentId: string; tokens: Int32Array }, state: Uint8Array | readonly Uint8Array[]): Promise<number> {
    const pieces = state instanceof Uint8Array ? [state] : [...state];
    this.pieces.push(pieces.map((piece) => piece.byteLength));
    return this.persist(planned.agentId, planned.tokens, new Uint8Array(pieces.reduce((n, piece) => n + piece.byteLength, 0)));
  }
  cancel(): void {}
  forget(agentId: string): Promise<boolean> {
    return Promise.resolve(this.files.delete(agentId));
  }
}
