/**
 * From the validated configuration (config.ts) to what a serving process runs with: the model id,
 * the inference options with cache budgets sized on this machine, the API keys read from their file,
 * and the access rules. Kept apart from config.ts, which only declares, layers and checks options.
 */
import { readFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { userCacheDir } from './paths.js';
import { diskBudgetBytes, ramBudgetBytes } from './budgets.js';
import { ConfigError, optionSpecs, type Config } from './config.js';
import type { InferenceOptions } from './inference-options.js';
import { parseMetricsBuckets } from './metrics-buckets.js';

/**
 * The id a model is served under when `modelId` is not set: its file name without `.gguf`, except
 * for generated models, whose cache file names carry a seed and format version that clients should
 * not have to know: `semantic-tiny-seed0-v2.gguf` is served as `semantic-tiny`.
 */
export function defaultModelId(modelPath: string): string {
  const name = basename(modelPath).replace(/\.gguf$/i, '');
  return /^(semantic-[a-z0-9.]+)-seed\d+-v\d+$/.exec(name)?.[1] ?? name;
}

export interface ServerSettings {
  host: string;
  port: number;
  maxBodyBytes: number;
  /** Client-side time limits on receiving a request, in ms (http-server.ts). */
  headersTimeoutMs: number;
  requestTimeoutMs: number;
  /** The only folder an admin model swap may load from (absolute). */
  modelsDir: string;
  inference: InferenceOptions;
  access: AccessSettings;
}

export interface AccessSettings {
  /** Empty: requests need no key (the admin routes still need the admin key). */
  apiKeys: string[];
  adminKey: string | undefined;
  /** Who may scrape /metrics. */
  metricsAccess: 'public' | 'user' | 'admin';
  /** Requests per minute; 0 = no limit. */
  perKeyPerMinute: number;
  perAgentPerMinute: number;
  burst: number;
  /** Whose cached prefixes a request may reuse (prefixSharing). */
  prefixSharing: 'key' | 'all' | 'off';
}

/** The keys of `apiKeys` and of the lines of `apiKeysFile` (a file that cannot be read or holds a bad key stops startup). */
function apiKeysOf(config: Config): string[] {
  const keys = config.apiKeys?.split(',') ?? [];
  if (config.apiKeysFile === undefined) return keys;
  let text: string;
  try {
    text = readFileSync(config.apiKeysFile, 'utf8');
  } catch (error) {
    throw new ConfigError([`apiKeysFile ${config.apiKeysFile} cannot be read: ${(error as Error).message}`]);
  }
  const lines = text
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'));
  const check = optionSpecs.adminKey.schema;
  const bad = lines.findIndex((line) => !check.safeParse(line).success);
  if (bad >= 0) throw new ConfigError([`apiKeysFile ${config.apiKeysFile}: line ${bad + 1} is not ${optionSpecs.adminKey.allowed}`]);
  return [...keys, ...lines];
}

/**
 * llama.cpp threads for each of `processes` serving processes on one machine: `threads` when set,
 * else the CPUs divided among them, at least one each. Every worker of `semantic supervise` runs its
 * own llama.cpp thread pool; one thread per CPU in each would put N threads on every core, and
 * llama.cpp's threads spin-wait for each other at every step, so a step stalls whenever one of them
 * is descheduled (issue 13: a 24-stream drain `serve` finished in 18 s was cut at 30 s with 2 workers).
 */
export function threadsPerProcess(threads: number, cpus: number, processes: number): number {
  return threads > 0 ? threads : Math.max(1, Math.floor(cpus / Math.max(1, processes)));
}

/**
 * Where the admin API may load models from: configured, or the folder of the model served at startup
 * (`modelPath`), so a swap can reach the models next to it and nothing else without any setting.
 */
export function resolvedModelsDir(config: Pick<Config, 'modelsDir'>, modelPath: string): string {
  return resolve(config.modelsDir ?? dirname(modelPath));
}

/** The agents' cache dir: configured, or the user's cache dir's `agents/`. */
export function resolvedCacheDir(config: Pick<Config, 'cacheDir'>): string {
  return resolve(config.cacheDir ?? join(userCacheDir(), 'agents'));
}

/**
 * What `startWorkerServer` needs from a config. The model path is passed separately because a config
 * without `model` serves the generated demo model, whose path is known only once it is made. Cache
 * budgets left at -1 (auto) are sized here, in the process that serves, from its own machine.
 */
export function toServerSettings(config: Config, modelPath: string): ServerSettings {
  const cacheDir = resolvedCacheDir(config);
  return {
    host: config.host,
    port: config.port,
    maxBodyBytes: config.maxBodyBytes,
    headersTimeoutMs: config.headersTimeout * 1000,
    requestTimeoutMs: Math.max(config.requestTimeout, config.headersTimeout) * 1000,
    modelsDir: resolvedModelsDir(config, modelPath),
    inference: {
      modelPath,
      modelId: config.modelId ?? defaultModelId(modelPath),
      modelAliases: config.modelAlias,
      contextSize: config.contextSize,
      maxSequences: config.maxSequences,
      batchTokens: config.batchTokens,
      threads: config.threads,
      kvType: config.kvType,
      flashAttention: config.flashAttention,
      kvUnified: config.kvUnified,
      idleAgents: config.idleAgents,
      gpuLayers: config.gpuLayers,
      ramBudgetBytes: ramBudgetBytes(config.ramCacheBytes),
      maxQueued: config.maxQueued,
      maxQueuedTokens: config.maxQueuedTokens,
      maxQueuedPerAgent: config.maxQueuedPerAgent,
      cacheDir,
      diskBudgetBytes: diskBudgetBytes(config.diskCacheBytes, cacheDir),
      ...(config.metricsBuckets === undefined ? {} : { metricsBuckets: parseMetricsBuckets(config.metricsBuckets) }),
    },
    access: {
      apiKeys: apiKeysOf(config),
      adminKey: config.adminKey,
      metricsAccess: config.metricsAccess,
      perKeyPerMinute: config.rateLimitPerKey,
      perAgentPerMinute: config.rateLimitPerAgent,
      burst: config.rateLimitBurst,
      prefixSharing: config.prefixSharing,
    },
  };
}
