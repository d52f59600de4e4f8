/**
 * The inference thread's metrics: a prom-client Registry of this thread's isolate (registries are per
 * isolate), updated where each event happens: a request arriving, starting (with the tier its cache
 * came from), each generated token, its end, each decode step, restores, evictions, cache file writes
 * and model swaps. The front pulls `json()` over the MessagePort when scraped and merges it with its own
 * registry (worker/metrics/process-metrics.ts); nothing here is computed from stale state at scrape time.
 * Gauges of current state (KV cells, agents per tier, disk files) are read from the live engine when
 * scraped (metrics-live.ts). Labels are bounded: tiers, sources, finish reasons; never an agent id.
 */
import { Counter, Gauge, Histogram, Registry, type MetricObjectWithValues, type MetricValue } from 'prom-client';
import { defaultBuckets, type MetricsBuckets } from '../../shared/metrics-buckets.js';
import type { CacheTier, FinishReason, Usage } from '../../shared/protocol/messages.js';
import { registerLiveGauges, type LiveSource } from './metrics-live.js';

/** Where an agent's cache went when it left a tier: `none` when no tier kept it. */
export type EvictionTier = 'hot' | 'ram' | 'disk' | 'none';

export const seconds = (fromMs: number, toMs: number): number => Math.max(0, toMs - fromMs) / 1000;

export class EngineMetrics {
  readonly registry = new Registry();
  private live: LiveSource | undefined;

  private readonly promptTokens = this.counter('semantic_prompt_tokens_total', 'Prompt tokens of started requests, cached or computed.');
  private readonly promptBySource = this.counter(
    'semantic_prompt_tokens_by_source_total',
    'Prompt tokens of started requests by where they came from: computed (prefilled), or reused from the hot, ram, disk tier or another agent (shared).',
    ['source'],
  );
  private readonly generated = this.counter('semantic_tokens_generated_total', 'Tokens generated (end tokens excluded), counted as each is sampled.');
  private readonly hits = this.counter('semantic_cache_hit_total', "Requests that reused cached tokens, by the tier they came from (shared: another agent's prefix).", ['tier']);
  private readonly misses = this.counter('semantic_cache_miss_total', 'Requests that reused no cached token.');
  private readonly evictions = this.counter('semantic_eviction_total', "Idle agents' caches pushed out of a tier by need (not an operator's clear), by where they went.", [
    'from',
    'to',
  ]);
  private readonly finished = this.counter('semantic_request_success_total', 'Requests that ended with tokens, by finish reason (abort: the client left or cancelled).', [
    'finish_reason',
  ]);
  private readonly quarantined = this.counter('semantic_disk_quarantined_files_total', 'Cache files found bad (checksum, format) and moved to quarantine/.');
  private readonly swaps = this.counter('semantic_model_swap_total', 'Admin model swaps, by result: ok, rolled_back (the new model failed to load) or failed (the engine died).', [
    'result',
  ]);

  private readonly ttft: Histogram;
  private readonly itl: Histogram;
  private readonly e2e: Histogram;
  private readonly queueTime: Histogram;
  private readonly prefillTime: Histogram;
  private readonly decodeTime: Histogram;
  private readonly requestPrompt: Histogram;
  private readonly requestGenerated: Histogram;
  private readonly batch: Histogram;
  private readonly restoreTime: Histogram<'tier'>;
  private readonly persistTime: Histogram;
  private readonly swapTime: Histogram;

  constructor(buckets: MetricsBuckets = defaultBuckets) {
    const { timeToFirstToken, timePerOutputToken, requestLatency, requestTokens, batchSize, cacheIo } = buckets;
    this.ttft = this.histogram('semantic_time_to_first_token_seconds', 'From a request reaching the engine to its first generated token.', timeToFirstToken);
    this.itl = this.histogram('semantic_inter_token_latency_seconds', 'Between two consecutive generated tokens of one request.', timePerOutputToken);
    this.e2e = this.histogram('semantic_e2e_request_latency_seconds', 'From a request reaching the engine to its end.', requestLatency);
    this.queueTime = this.histogram('semantic_request_queue_time_seconds', 'From a request reaching the engine to its start (its cache restored).', requestLatency);
    this.prefillTime = this.histogram('semantic_request_prefill_time_seconds', 'From a request starting to its first generated token.', requestLatency);
    this.decodeTime = this.histogram('semantic_request_decode_time_seconds', 'From a request’s first generated token to its end.', requestLatency);
    this.requestPrompt = this.histogram('semantic_request_prompt_tokens', 'Prompt tokens per ended request.', requestTokens);
    this.requestGenerated = this.histogram('semantic_request_generation_tokens', 'Generated tokens per ended request.', requestTokens);
    this.batch = this.histogram('semantic_batch_size', 'Sequences carried by each decode step.', batchSize);
    this.restoreTime = new Histogram({
      name: 'semantic_cache_restore_duration_seconds',
      help: "Reading and importing a returning agent's saved state, by the tier it came from.",
      labelNames: ['tier'] as const,
      buckets: cacheIo,
      registers: [this.registry],
    });
    this.persistTime = this.histogram('semantic_cache_persist_duration_seconds', 'One cache file write by the disk writer thread, its wait in the queue included.', cacheIo);
    this.swapTime = this.histogram('semantic_model_swap_duration_seconds', 'An admin model swap, from retiring the old model to serving (either model).', cacheIo);
    registerLiveGauges(this.registry, () => this.live);
    // Every result at 0 from the start: an alert's increase() sees the first failed swap (a series born at 1 shows no increase).
    for (const result of ['ok', 'rolled_back', 'failed']) this.swaps.inc({ result }, 0);
  }

  /** Set once, when the thread starts: what is running, whatever model it serves. */
  buildInfo(version: string, llamaCpp: string, backend: string): void {
    const info = new Gauge({
      name: 'semantic_build_info',
      help: 'The build running (value 1): our version, the llama.cpp release linked and the backend decoding.',
      labelNames: ['version', 'llama_cpp', 'backend'] as const,
      registers: [this.registry],
    });
    info.set({ version, llama_cpp: llamaCpp, backend }, 1);
  }

  /** The engine serving now (and its disk tier): the gauges of current state read it when scraped. */
  attach(source: LiveSource): void {
    this.live = source;
  }

  /** This thread's metrics, as prom-client's JSON (what `AggregatorRegistry.aggregate` merges). */
  async json(): Promise<MetricObjectWithValues<MetricValue<string>>[]> {
    return (await this.registry.getMetricsAsJSON()) as MetricObjectWithValues<MetricValue<string>>[];
  }

  /** A request started (its cache in place), `queueSeconds` after it reached the engine. */
  started(promptTokens: number, cachedTokens: number, tier: CacheTier, queueSeconds: number): void {
    this.queueTime.observe(queueSeconds);
    this.promptTokens.inc(promptTokens);
    this.promptBySource.inc({ source: 'computed' }, promptTokens - cachedTokens);
    if (tier === 'miss') this.misses.inc();
    else {
      this.hits.inc({ tier });
      this.promptBySource.inc({ source: tier }, cachedTokens);
    }
  }

  /** A token the client receives: its first (`ttft` from arrival, `prefill` from start) or a later one (`interToken`). */
  token(latency?: { ttft: number; prefill: number } | { interToken: number }): void {
    this.generated.inc();
    if (latency === undefined) return;
    if ('interToken' in latency) return this.itl.observe(latency.interToken);
    this.ttft.observe(latency.ttft);
    this.prefillTime.observe(latency.prefill);
  }

  /** The request's end with tokens: `e2e` from arrival, `decode` from its first token (none when it sent none). */
  ended(outcome: { finishReason: FinishReason; usage: Usage }, e2e: number | undefined, decode: number | undefined): void {
    this.finished.inc({ finish_reason: outcome.finishReason });
    this.requestPrompt.observe(outcome.usage.promptTokens);
    this.requestGenerated.observe(outcome.usage.completionTokens);
    if (e2e !== undefined) this.e2e.observe(e2e);
    if (decode !== undefined) this.decodeTime.observe(decode);
  }

  step(sequences: number): void {
    this.batch.observe(sequences);
  }

  restored(tier: 'ram' | 'disk', startedMs: number): void {
    this.restoreTime.observe({ tier }, seconds(startedMs, performance.now()));
  }

  evicted(from: EvictionTier, to: EvictionTier, count = 1): void {
    if (count > 0) this.evictions.inc({ from, to }, count);
  }

  persisted(startedMs: number): void {
    this.persistTime.observe(seconds(startedMs, performance.now()));
  }

  quarantine(): void {
    this.quarantined.inc();
  }

  swapped(result: 'ok' | 'rolled_back' | 'failed', startedMs: number): void {
    this.swaps.inc({ result });
    this.swapTime.observe(seconds(startedMs, performance.now()));
  }

  private counter<L extends string = never>(name: string, help: string, labelNames: readonly L[] = []): Counter<L> {
    return new Counter({ name, help, labelNames, registers: [this.registry] });
  }

  private histogram(name: string, help: string, buckets: number[]): Histogram {
    return new Histogram({ name, help, buckets, registers: [this.registry] });
  }
}
