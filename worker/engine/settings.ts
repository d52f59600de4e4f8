/** What the engine is built with: sizes and limits resolved for this machine and model (inference/thread.ts). */
export interface EngineSettings {
  contextSize: number;
  /** Cells one sequence can hold: the context size, or its share when the KV cache is split into streams. */
  sequenceSize: number;
  maxSequences: number;
  /** Tokens per decode step at most: changed at run time by the admin API, up to maxBatchTokens. */
  batchTokens: number;
  /** The context's batch size (n_batch), fixed when it was created: one decode can carry no more. */
  maxBatchTokens: number;
  /** KV cells per block of the pool. */
  blockSize: number;
  /** Requests waiting for a sequence at most; more are refused with 429. Changed at run time by the admin API. */
  maxQueued: number;
  /** Prompt + max tokens of all waiting requests at most; more are refused with 429. */
  maxQueuedTokens: number;
  /** Requests of one agent waiting at most (behind its running turn, or for cells); more are refused with 429. */
  maxQueuedPerAgent: number;
  /** Generation cap when a request names no max tokens. */
  defaultMaxTokens: number;
  /** Bytes of exported KV state the RAM tier may hold. */
  ramBudgetBytes: number;
  /**
   * Whether idle agents whose cells are mostly their own leave the context for the RAM tier (or the
   * disk) when another request starts, rather than widening every step's attention (tiers.ts).
   */
  spillIdleOnStart?: boolean | undefined;
  /** A sequence id beyond maxSequences that no request uses, for exporting part of an agent's cells; none with split streams. */
  scratchSeq?: number | undefined;
}
