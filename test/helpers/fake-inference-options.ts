/**
 * Inference options for tests that start the fake inference thread (test/fixtures/fake-inference-thread.mjs):
 * small, addon-free values; the model path names the fake's behaviour (`fake://ready`, …).
 */
import type { InferenceOptions } from '../../shared/inference-options.js';

export function fakeInferenceOptions(modelPath: string): InferenceOptions {
  return {
    modelPath,
    modelId: 'fake-model',
    contextSize: 4096,
    maxSequences: 4,
    batchTokens: 512,
    threads: 1,
    kvType: 'f16',
    flashAttention: false,
    kvUnified: true,
    idleAgents: 'auto',
    gpuLayers: 0,
    ramBudgetBytes: 0,
    cacheDir: '/nonexistent',
    diskBudgetBytes: 0,
    maxQueued: 8,
    maxQueuedTokens: 65536,
    maxQueuedPerAgent: 4,
  };
}
