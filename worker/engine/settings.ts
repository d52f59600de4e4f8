/** What the engine is built with: sizes and limits resolved for this machine and model (inference/thread.ts). */
export interface EngineSettings {
  contextSize: number;
  /** Cells one sequence can hold: the context size, or its share when the KV cache is split into streams. */
  sequenceSize: number;
  maxSequences: number;
  batchTokens: number;
  /** KV cells per block of the pool. */
  blockSize: number;
  /** Requests waiting for a sequence at most; more are refused with 429. */
  maxQueued: number;
  /** Prompt + max tokens of all waiting requests at most; more are refused with 429. */
  maxQueuedTokens: number;
  /** Generation cap when a request names no max tokens. */
  defaultMaxTokens: number;
  /** Bytes of exported KV state the RAM tier may hold. */
  ramBudgetBytes: number;
}
