/**
 * What the inference thread is started with (worker_threads `workerData`). It sits on the ground
 * floor because the config resolves it (server-settings.ts) and both processes pass it on.
 */
import type { MetricsBuckets } from './metrics-buckets.js';

/** KV cache element types llama.cpp takes for `type_k`/`type_v` (ggml's names). */
export const kvTypes = ['f16', 'q8_0', 'q4_0'] as const;
export type KvType = (typeof kvTypes)[number];

export interface InferenceOptions {
  /** Path of the GGUF file to load. */
  modelPath: string;
  /** The id clients use in `model` and see in /v1/models. */
  modelId: string;
  /** More ids the served model answers to (`modelAlias`); absent: none. */
  modelAliases?: readonly string[];
  /** KV cells of the one context, shared by all sequences; -1: sized from the model and memory. */
  contextSize: number;
  /** Sequences decoded together at most (continuous batching width). */
  maxSequences: number;
  /** Tokens per decode step at most (generated tokens + prefill chunks). */
  batchTokens: number;
  /** Threads for llama.cpp; 0 = one per available CPU (`supervise` gives its workers their share instead: threadsPerProcess). */
  threads: number;
  kvType: KvType;
  flashAttention: boolean;
  /** One cell pool for all sequences, or one stream of contextSize / maxSequences cells each. */
  kvUnified: boolean;
  /** Where idle agents' cells wait when another agent's request starts (shared/config.ts idleAgents). */
  idleAgents: 'auto' | 'spill' | 'keep';
  gpuLayers: number;
  /** Bytes of idle agents' exported KV state kept in host memory (the RAM tier). */
  ramBudgetBytes: number;
  /** Requests that may wait for room; more get 429. */
  maxQueued: number;
  /** Prompt + max tokens of all waiting requests at most; more get 429. */
  maxQueuedTokens: number;
  /** Requests of one agent waiting at most; more get 429. */
  maxQueuedPerAgent: number;
  /** Folder of agents' cache files (the disk tier). */
  cacheDir: string;
  /** Bytes of agents' cache files kept in cacheDir (least recently used deleted first); 0 = no disk tier. */
  diskBudgetBytes: number;
  /** Histogram boundaries per family (shared/metrics-buckets.ts); absent: the defaults. */
  metricsBuckets?: MetricsBuckets;
}
