/**
 * The one validated configuration. Each option is declared once below with its default, its doc and
 * its check; the CLI flags, the `SEMANTIC_*` environment variables and `semantic config` are all
 * derived from that table, so they cannot drift apart.
 *
 * Precedence, lowest to highest: defaults ← config file (`--config path.json`) ← env ← flags.
 * Every value is checked at startup; a bad one stops the process with a message that names the option,
 * where the value came from and what is allowed (the CLI exits 2 on a ConfigError).
 */
import { readFileSync } from 'node:fs';
import { kvTypes } from './inference-options.js';
import { bucketsAllowed, parseMetricsBuckets } from './metrics-buckets.js';
import { z } from 'zod';
import { AUTO } from './budgets.js';
import { booleanOption, budgetOption, enumOption, integerOption, keyOption, listOption, textOption, type OptionKind, type OptionSpec } from './option-spec.js';

export type { OptionSpec } from './option-spec.js';

const MiB = 1024 * 1024;

function bucketsValid(text: string): boolean {
  try {
    parseMetricsBuckets(text);
    return true;
  } catch {
    return false;
  }
}

/**
 * Apple Silicon links the Metal build of llama.cpp and its GPU shares the memory, so every layer goes
 * there by default, as llama-server and Ollama do on a Mac; elsewhere a GPU library is opt-in, so CPU.
 */
export function defaultGpuLayers(platform: string = process.platform, arch: string = process.arch): number {
  return platform === 'darwin' && arch === 'arm64' ? -1 : 0;
}

export const optionSpecs = {
  host: {
    kind: 'string',
    schema: z
      .string()
      .min(1)
      .max(253)
      .regex(/^[A-Za-z0-9.:_-]+$/),
    default: '127.0.0.1',
    allowed: 'a host name or IP address (letters, digits, ".", ":", "_", "-")',
    doc: 'Address to listen on. Loopback by default, so a fresh install is not reachable from the network.',
  } satisfies OptionSpec<string>,
  port: integerOption(8080, 0, 65535, 'TCP port to listen on; 0 lets the OS pick a free one (the "listening" log line tells which).'),
  model: textOption(
    'Path of the GGUF model to serve (relative to the working directory). The demo model has random weights: it shows the server works, its output is gibberish.',
    4096,
    'spaces allowed',
  ),
  modelId: textOption('The id clients send as `model` and see in /v1/models.', 256, 'no spaces'),
  modelAlias: listOption(
    "More ids the served model answers to, on every API and in /v1/models (repeat the flag, or separate with commas), like llama-server's --alias: e.g. claude-sonnet-4-5 for Claude Code, which refuses model names it does not know. They stay after an admin model swap.",
    64,
    256,
  ),
  contextSize: {
    kind: 'integer',
    schema: z.union([z.literal(AUTO), z.number().int().min(16).max(1_048_576)]),
    default: AUTO,
    allowed: '-1 (auto) or an integer from 16 to 1048576',
    doc: "KV cells of the one llama.cpp context, shared by all sequences (prompt + output tokens of every active request); -1 (auto): the model's training context, at most what fits in an eighth of memory.",
  } satisfies OptionSpec<number>,
  maxSequences: integerOption(8, 1, 256, 'Requests decoded together at most (continuous-batching width; llama.cpp allows 256 sequences).'),
  batchTokens: integerOption(512, 1, 65_536, 'Tokens per decode step at most (generated tokens + prefill chunks): bigger prefills faster, smaller keeps streams smooth.'),
  threads: integerOption(
    0,
    0,
    1024,
    'CPU threads for llama.cpp in each serving process; 0 = the available CPUs divided among the processes: all of them for `serve`, CPUs / workers (at least 1) for each worker of `supervise`.',
  ),
  kvType: enumOption(kvTypes, 'f16', 'KV cache element type; q8_0 and q4_0 hold 2x and 4x more tokens per byte and need flashAttention.'),
  flashAttention: booleanOption(false, "Use llama.cpp's flash attention kernels (required for a quantised kvType)."),
  kvUnified: booleanOption(
    true,
    'One KV cell pool shared by all sequences, so one agent may use most of the context. false splits it into maxSequences equal streams: each request is capped at contextSize / maxSequences tokens, but attention spans only its own stream, which is about twice as fast with 32 sequences decoding (docs/benchmarks.md).',
  ),
  idleAgents: enumOption(
    ['auto', 'spill', 'keep'],
    'auto',
    "Where an idle agent's cells wait when another agent's request starts: spill = to the RAM tier (or disk), when most of them are its own; keep = in the context (the hot tier) until room is needed; auto = spill without flash attention, where every step's attention spans every occupied cell, idle ones included (keep with it on, whose kernel skips them).",
  ),
  prefixSharing: enumOption(
    ['key', 'all', 'off'],
    'key',
    "Who reuses whose cached prompt prefixes: key = agents of the same API key (all agents when no keys are set), all = every agent, off = each agent only its own. Identical tokens give identical KV, but a hit's speed tells that someone sent the prefix, so sharing stays within a key by default.",
  ),
  gpuLayers: integerOption(
    defaultGpuLayers(),
    -1,
    4096,
    'Model layers offloaded to a GPU backend when one is installed; 0 = CPU only, -1 = all. Default: -1 on Apple Silicon (Metal), 0 elsewhere.',
  ),
  maxQueued: integerOption(
    64,
    0,
    100_000,
    "Requests that may wait for a sequence or KV cells, or behind their agent's running turn; one more is answered 429 with Retry-After at once.",
  ),
  maxQueuedPerAgent: integerOption(
    4,
    0,
    100_000,
    'Requests of one agent (X-Agent-ID) that may wait, within maxQueued: its turns run one at a time, so each one waiting adds a whole turn to the latency of those behind it; an agent loop sends one turn at a time, and 4 lets a burst of parallel tool results through without letting one client fill the shared queue. One more is answered 429 ERR_AGENT_QUEUE_FULL with Retry-After.',
  ),
  maxQueuedTokens: {
    kind: 'integer',
    schema: z.number().int().min(AUTO).max(100_000_000),
    default: AUTO,
    allowed: '-1 (auto) or an integer from 0 to 100000000',
    doc: "Prompt + max tokens of all waiting requests at most; a request beyond it is answered 429 with Retry-After. -1 (auto): 4x the context size, about what can start within a few turns of the running requests; more would wait past most clients' timeouts.",
  } satisfies OptionSpec<number>,
  modelsDir: textOption(
    'The folder the admin model swap (POST /admin/model) may load from, subfolders included: a path outside it, also through `..` or a symbolic link, is refused (403 ERR_MODEL_PATH_FORBIDDEN). Default: the folder of the model served at startup. Put every model you swap between in it.',
    4096,
    'spaces allowed',
  ),
  cacheDir: textOption("Folder of agents' cache files (the disk tier), kept across restarts; default: the user cache, e.g. ~/.cache/semantic/agents.", 4096, 'spaces allowed'),
  ramCacheBytes: budgetOption(
    1024 * 1024 * MiB,
    "Bytes of idle agents' exported KV state kept in host memory (the RAM tier), least recently used out first; 0 turns the tier off; " +
      '-1 = auto (default): a quarter of the memory (or of the cgroup limit, where lower), at most 8 GiB, per server process, ' +
      'leaving the rest to the model, the KV cache and the page cache.',
  ),
  diskCacheBytes: budgetOption(
    1024 * 1024 * 1024 * MiB,
    "Bytes of agents' cache files kept in the cache dir (the disk tier), least recently used deleted first; 0 turns the tier off; " +
      "-1 = auto (default): a quarter of the cache dir file system's free space plus what the dir already holds, at most 64 GiB, per server process.",
  ),
  apiKeys: keyOption(
    true,
    'API keys clients send as `Authorization: Bearer <key>` or `x-api-key`, comma-separated; prefer the env variable or a file over the command line (argv is visible to every user). With none set (and no apiKeysFile), requests need no key.',
  ),
  apiKeysFile: textOption('A file of API keys, one per line (blank lines and lines starting with # ignored), added to apiKeys.', 4096, 'spaces allowed'),
  adminKey: keyOption(
    false,
    'The key of the admin routes (/admin/…, /debug/engine); it also passes wherever an API key does. Unset: admin routes answer 403, except on a server with no key at all bound to loopback (local development), where every route is open.',
  ),
  metricsAccess: enumOption(
    ['public', 'user', 'admin'],
    'public',
    'Who may scrape GET /metrics: anyone (Prometheus inside the cluster), a holder of an API key, or the admin key only.',
  ),
  metricsBuckets: {
    kind: 'string',
    schema: z
      .string()
      .max(8192)
      .refine((text) => bucketsValid(text))
      .optional(),
    default: undefined,
    allowed: bucketsAllowed,
    doc: 'Histogram bucket boundaries per family, as JSON, e.g. {"timeToFirstToken":[0.05,0.1,0.5,1,5]}: each family replaces the defaults of its metrics (docs/metrics.md lists them). Unset: the OpenTelemetry GenAI boundaries extended as vLLM does.',
  } satisfies OptionSpec<string | undefined>,
  rateLimitPerKey: integerOption(
    0,
    0,
    1_000_000,
    'Requests per minute each API key may send (a token bucket of rateLimitBurst requests); 0 = no limit. Over it: 429 with Retry-After.',
  ),
  rateLimitPerAgent: integerOption(
    0,
    0,
    1_000_000,
    'Requests per minute each agent may send (a token bucket of rateLimitBurst requests); 0 = no limit. Over it: 429 with Retry-After.',
  ),
  rateLimitBurst: integerOption(10, 1, 1_000_000, 'Requests a key or an agent may send at once before its per-minute rate applies (the token bucket size).'),
  drainTimeout: integerOption(
    30,
    1,
    3600,
    "Seconds a SIGTERM drain may take (running requests finish, agents' caches are written); past it, requests still running are cut and the process exits 3. Kubernetes: terminationGracePeriodSeconds > this + a margin.",
  ),
  readyMaxPoolPercent: integerOption(
    90,
    1,
    100,
    "KV pool utilisation (percent of blocks reserved by running and queued requests; idle agents' blocks are reclaimable and not counted) above which /health/ready answers 503.",
  ),
  maxBodyBytes: integerOption(
    4 * MiB,
    1024,
    256 * MiB,
    'Request bodies over this size are answered 413 (the rest of the body is read and dropped for up to 2 s first, so the client reads the answer instead of a reset).',
  ),
  headersTimeout: integerOption(
    10,
    1,
    3600,
    "Seconds a client has to send a request's headers (a connection that sends nothing counts too); past it: 408 and the connection closes.",
  ),
  requestTimeout: integerOption(
    60,
    1,
    3600,
    'Seconds a client has to send a whole request, body included (e.g. a body shorter than its Content-Length); past it: 408 and the connection closes. Never limits a response. At least headers-timeout.',
  ),
  logLevel: enumOption(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'], 'info', 'Lowest level of log lines written.'),
  logFile: textOption(
    "Also write the log lines to files (JSON, one per line, as on stdout), rotated and pruned (logFileSize, logFileFrequency, logFileCount): <stem>.<date>.<n><ext>, e.g. semantic.log → semantic.2026-12-07.1.log, semantic.2026-12-07.2.log, … (no date with logFileFrequency none; the hour too with hourly). Under `semantic supervise` that is the supervisor's; worker slot i writes <stem>.worker-<i>.<date>.<n><ext> (<stem>.worker-<i>b… for a rolling restart's replacement while its predecessor drains), so no two processes write one file. The folder is created if missing.",
    4096,
    'spaces allowed',
  ),
  logFileSize: {
    kind: 'string',
    schema: z.string().regex(/^[1-9]\d{0,5}[kmg]$/),
    default: '10m',
    allowed: 'a size: a number of 1 to 6 digits followed by k, m or g (KiB, MiB, GiB), e.g. 10m',
    doc: 'A log file is rotated once it reaches this size (the line that crosses it still goes in it).',
  } satisfies OptionSpec<string>,
  logFileFrequency: enumOption(['daily', 'hourly', 'none'], 'daily', 'A log file is also rotated at each midnight (daily) or full hour (hourly), local time; none: by size only.'),
  logFileCount: integerOption(
    10,
    1,
    10_000,
    'Log files kept per process name, the one being written included; older ones are deleted at each rotation, files of earlier runs with that name included.',
  ),
  scrapeTimeoutMs: {
    ...integerOption(
      3000,
      100,
      60_000,
      "Milliseconds a scrape of GET /metrics under `semantic supervise` waits for each worker's metrics; a worker that has not answered by then is left out of that scrape and counted in semantic_scrape_workers_missing. Keep it under Prometheus's scrape_timeout (10 s by default).",
    ),
    superviseOnly: true,
  },
  workers: { ...integerOption(2, 1, 64, 'Worker processes `semantic supervise` runs on the shared port; each loads its own model copy.'), superviseOnly: true },
} as const;

export type OptionName = keyof typeof optionSpecs;
type ValueOf<S> = S extends OptionSpec<infer T> ? T : never;
export type Config = { -readonly [K in OptionName]: ValueOf<(typeof optionSpecs)[K]> };

export const optionNames = Object.keys(optionSpecs) as OptionName[];

/** `contextSize` → `context-size`. */
export function flagName(option: OptionName): string {
  return option.replace(/[A-Z]/g, (letter) => '-' + letter.toLowerCase());
}

/** `contextSize` → `SEMANTIC_CONTEXT_SIZE`. */
export function envName(option: OptionName): string {
  return 'SEMANTIC_' + flagName(option).replace(/-/g, '_').toUpperCase();
}

/** A bad configuration: the CLI prints `message` (one line per problem) and exits 2. */
export class ConfigError extends Error {
  readonly code = 'ERR_INVALID_CONFIG';
  constructor(readonly problems: string[]) {
    super(problems.join('\n'));
    this.name = 'ConfigError';
  }
}

export interface ConfigSources {
  /** Path of a JSON config file (`--config`). */
  file?: string;
  /** Usually `process.env`; only `SEMANTIC_<OPTION>` names are read, others are ignored. */
  env?: Record<string, string | undefined>;
  /** Parsed CLI flags by option name (camelCase); undefined means the flag was not given. */
  flags?: Partial<Record<OptionName, unknown>>;
}

/** One source of values, e.g. the env; `origin` says where a value came from in error messages. */
interface Layer {
  values: Partial<Record<OptionName, unknown>>;
  origin(option: OptionName): string;
}

/** Env and flag values arrive as text; numbers and booleans are read from it here, once. */
function fromText(kind: OptionKind, text: string): unknown {
  const trimmed = text.trim();
  if (kind === 'integer' && /^[+-]?\d+$/.test(trimmed)) return Number(trimmed);
  if (kind === 'list') return trimmed === '' ? [] : trimmed.split(',').map((name) => name.trim());
  if (kind === 'boolean') {
    if (/^(true|1|yes|on)$/i.test(trimmed)) return true;
    if (/^(false|0|no|off)$/i.test(trimmed)) return false;
  }
  return text;
}

/** A JSON object of options (config file, or a config handed to a worker); unknown keys are errors. */
function parseOptionsObject(text: string, origin: string): Partial<Record<OptionName, unknown>> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new ConfigError([`${origin} is not valid JSON: ${(error as Error).message}`]);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new ConfigError([`${origin} must hold a JSON object of options`]);
  }
  const unknownKeys = Object.keys(parsed).filter((key) => !Object.hasOwn(optionSpecs, key));
  if (unknownKeys.length > 0) {
    throw new ConfigError(unknownKeys.map((key) => `${origin}: unknown option "${key}" (known options: ${optionNames.join(', ')})`));
  }
  return parsed as Partial<Record<OptionName, unknown>>;
}

function fileLayer(path: string): Layer {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new ConfigError([`config file ${path} cannot be read: ${(error as Error).message}`]);
  }
  return { values: parseOptionsObject(text, `config file ${path}`), origin: () => `config file ${path}` };
}

function envLayer(env: Record<string, string | undefined>): Layer {
  const values: Partial<Record<OptionName, unknown>> = {};
  for (const option of optionNames) {
    const text = env[envName(option)];
    // An empty variable counts as unset, as shells and container specs commonly write them.
    if (text !== undefined && text !== '') values[option] = fromText(optionSpecs[option].kind, text);
  }
  return { values, origin: (option) => `env ${envName(option)}` };
}

/** A list option's flag given more than once arrives as an array of texts, each of which may hold several names. */
function flagValue(kind: OptionKind, flag: unknown): unknown {
  if (kind === 'list' && Array.isArray(flag)) return flag.flatMap((part) => (typeof part === 'string' ? (fromText(kind, part) as string[]) : [part]));
  return typeof flag === 'string' ? fromText(kind, flag) : flag;
}

function flagLayer(flags: Partial<Record<OptionName, unknown>>): Layer {
  const values: Partial<Record<OptionName, unknown>> = {};
  for (const option of optionNames) {
    const flag = flags[option];
    if (flag !== undefined) values[option] = flagValue(optionSpecs[option].kind, flag);
  }
  return { values, origin: (option) => `flag --${flagName(option)}` };
}

function describeValue(value: unknown, secret = false): string {
  if (secret) return typeof value === 'string' ? `a value of ${value.length} characters (not shown: it holds keys)` : typeof value;
  return typeof value === 'string' || Array.isArray(value) ? JSON.stringify(value) : String(value);
}

/** Checks that span options: llama.cpp would refuse these mixes only once the model is loading. */
function crossOptionProblems(config: Config): string[] {
  if (config.kvType !== 'f16' && !config.flashAttention) {
    return [`kvType ${config.kvType} needs flashAttention true: llama.cpp quantises the V cache only with flash attention (pass --flash-attention, or use kvType f16)`];
  }
  return [];
}

/** Later layers win; every option is checked; one ConfigError lists every problem found. */
function resolveLayers(layers: Layer[]): Config {
  const problems: string[] = [];
  const config: Record<string, unknown> = {};
  for (const option of optionNames) {
    const spec: OptionSpec<unknown> = optionSpecs[option];
    const layer = [...layers].reverse().find((candidate) => candidate.values[option] !== undefined);
    if (layer === undefined) {
      config[option] = spec.default;
      continue;
    }
    const value = layer.values[option];
    const checked = spec.schema.safeParse(value);
    if (checked.success) config[option] = checked.data;
    else problems.push(`${option} must be ${spec.allowed}; got ${describeValue(value, spec.secret)} from ${layer.origin(option)}`);
  }
  if (problems.length > 0) throw new ConfigError(problems);
  const crossProblems = crossOptionProblems(config as Config);
  if (crossProblems.length > 0) throw new ConfigError(crossProblems);
  return config as Config;
}

/** Defaults ← file ← env ← flags, checked. Reads the file synchronously: this runs once, at startup. */
export function loadConfig(sources: ConfigSources = {}): Config {
  const layers: Layer[] = [];
  if (sources.file !== undefined) layers.push(fileLayer(sources.file));
  if (sources.env !== undefined) layers.push(envLayer(sources.env));
  if (sources.flags !== undefined) layers.push(flagLayer(sources.flags));
  return resolveLayers(layers);
}

/** Re-checks a config that crossed a process boundary as JSON (supervisor → worker) with the same checks. */
export function configFromJson(text: string, origin: string): Config {
  const values = parseOptionsObject(text, origin);
  return resolveLayers([{ values, origin: () => origin }]);
}
