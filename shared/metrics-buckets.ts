/**
 * Histogram bucket boundaries of the metric families (docs/metrics.md), and the `metricsBuckets` option
 * that overrides them. The defaults are the OpenTelemetry GenAI boundaries extended as vLLM extends
 * them, so dashboards built for vLLM read ours unchanged: every bucket is one more series per label
 * set, so an operator who needs finer (or fewer) boundaries sets them per family, not per metric.
 */
import { z } from 'zod';

/** OTel gen_ai.server.time_to_first_token (0.001…10 s), then vLLM's 20…2560 s for long queues. */
const timeToFirstToken = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80, 160, 640, 2560];
/** OTel gen_ai.server.time_per_output_token (0.01…2.5 s), then vLLM's 5…80 s (a CPU host under load). */
const timePerOutputToken = [0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80];
/** vLLM's e2e / queue / prefill / decode boundaries (its tail to 7680 s: p99 of long agent turns). */
const requestLatency = [0.3, 0.5, 0.8, 1, 1.5, 2, 2.5, 5, 10, 15, 20, 30, 40, 50, 60, 120, 240, 480, 960, 1920, 7680];
/** The OpenTelemetry HTTP server duration advice from 5 ms, to 2 minutes (streams). */
const httpDuration = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 30, 60, 120];
/** Cache file writes and reads, model swaps: milliseconds on a fast disk to minutes for a large model load. */
const cacheIo = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];
/** Tokens per request: powers of 4 like OTel gen_ai.client.token.usage, to 1M. */
const requestTokens = [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576];
/** Sequences per decode step. */
const batchSize = [1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256];

export const defaultBuckets = { timeToFirstToken, timePerOutputToken, requestLatency, httpDuration, cacheIo, requestTokens, batchSize };
export type BucketFamily = keyof typeof defaultBuckets;
export type MetricsBuckets = Record<BucketFamily, number[]>;

const boundaries = z
  .array(z.number().positive().finite())
  .min(1)
  .max(64)
  .refine((list) => list.every((value, i) => i === 0 || value > (list[i - 1] ?? -Infinity)), 'boundaries must increase strictly');
const overridesSchema = z.object(Object.fromEntries(Object.keys(defaultBuckets).map((family) => [family, boundaries.optional()]))).strict();

/** What the option accepts, in words (its error messages end with it). */
export const bucketsAllowed = `a JSON object of families (${Object.keys(defaultBuckets).join(', ')}) to 1–64 strictly increasing positive numbers`;

/**
 * The option's JSON text (undefined: none) over the defaults; throws an Error naming the family and
 * the problem for text that is not such an object.
 */
export function parseMetricsBuckets(text: string | undefined): MetricsBuckets {
  if (text === undefined) return { ...defaultBuckets };
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new Error(`not JSON: ${text.slice(0, 40)}`);
  }
  const parsed = overridesSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new Error(`${issue?.path.join('.') || 'value'}: ${issue?.message ?? 'rejected'}`);
  }
  const overrides = parsed.data as Partial<MetricsBuckets>;
  return { ...defaultBuckets, ...Object.fromEntries(Object.entries(overrides).filter(([, list]) => list !== undefined)) };
}

/** `semantic_memory_used_bytes` is defined on both sides of a worker (front: process; inference thread: kv, ram_tier): one help text, so the merged family reads the same whichever comes first. */
export const MEMORY_HELP = 'Memory held by kind: kv (used KV cells), ram_tier (idle agents states and logits rows in host memory), process (resident set of the whole process).';
