/**
 * What the RAM tier holds, apart from the code that holds it: an idle agent's exported state, and
 * the shared segment its first cells may sit on (ram-segments.ts). Both ram-cache.ts and
 * ram-segments.ts speak of both, so the types live below them.
 */

export interface Segment {
  key: number;
  scope: string;
  tokens: Int32Array;
  state: Uint8Array;
  refs: number;
}

export interface RamEntry {
  agentId: string;
  tokens: Int32Array;
  logits: Float32Array;
  /** The agent's own cells: all of them, or those past `prefix` (a state blob either way). */
  own: Uint8Array;
  /** The shared segment holding the agent's first cells, if any. */
  prefix?: Segment | undefined;
  /** When the agent's turn ended, ms since the epoch (not when it was spilled here). */
  usedAt: number;
  /** Who may reuse a prefix of this state (prefix-index.ts); undefined: the agent alone. */
  scope?: string | undefined;
}
