/**
 * The wire contract between a worker's main thread (HTTP front) and its inference thread.
 * Only these messages cross the MessagePort, msgpack-encoded (codec.ts). Each message has one schema
 * here, and its TypeScript type is inferred from it, so the decoder's check and the compiler agree.
 * Bump PROTOCOL_VERSION on any change an older peer would misread; the codec rejects other versions.
 */
import { z } from 'zod';
import { ErrorCode } from '../errors.js';

export const PROTOCOL_VERSION = 6;

const requestId = z.string().min(1).max(200);
const count = z.number().int().nonnegative();

export const errorPayloadSchema = z.object({
  code: z.enum(Object.values(ErrorCode) as [ErrorCode, ...ErrorCode[]]),
  message: z.string(),
  param: z.string().optional(),
  retryAfter: z.number().nonnegative().optional(),
});

/** A function the model may call: OpenAI's `function` and Anthropic's tool, one shape. `parameters` is a JSON Schema. */
export const toolDefinitionSchema = z.object({
  name: z.string().min(1),
  description: z.string().optional(),
  parameters: z.record(z.string(), z.unknown()).optional(),
});
export type ToolDefinition = z.infer<typeof toolDefinitionSchema>;

/** A call the assistant made; `arguments` is JSON text, as OpenAI carries it. */
export const toolCallSchema = z.object({ id: z.string(), name: z.string(), arguments: z.string() });
export type ToolCall = z.infer<typeof toolCallSchema>;

export const chatMessageSchema = z.object({
  role: z.enum(['system', 'developer', 'user', 'assistant', 'tool']),
  content: z.string(),
  /** An assistant turn's tool calls. */
  toolCalls: z.array(toolCallSchema).optional(),
  /** A tool message: the call it answers, and the tool's name when known. */
  toolCallId: z.string().optional(),
  name: z.string().optional(),
  /** An assistant turn's reasoning, given to the template as `reasoning_content` (Qwen3's templates render it only in a tool-call loop in progress). */
  reasoning: z.string().optional(),
});
export type ChatMessage = z.infer<typeof chatMessageSchema>;

export const samplingSchema = z.object({
  /** 0 = greedy. */
  temperature: z.number().nonnegative(),
  topP: z.number().gt(0).lte(1),
  topK: count,
  minP: z.number().min(0).max(1),
  seed: z.number().int().nonnegative().optional(),
  repeatPenalty: z.number().positive(),
  frequencyPenalty: z.number(),
  presencePenalty: z.number(),
  /** GBNF (root rule `root`) the output must match: JSON mode, forced tool calls. */
  grammar: z.string().min(1).optional(),
});
export type SamplingParams = z.infer<typeof samplingSchema>;

/** What to generate from: chat messages rendered with the model's own template, or raw text. */
const generateInputSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('chat'), messages: z.array(chatMessageSchema).min(1), tools: z.array(toolDefinitionSchema).optional() }),
  z.object({ kind: z.literal('text'), prompt: z.string() }),
]);
export type GenerateInput = z.infer<typeof generateInputSchema>;

/** Where a reasoning model's output starts (worker/tools/reasoning.ts): inside `<think>`, where it may open one, or at the answer. */
const reasoningStartSchema = z.enum(['reasoning', 'may-open', 'answer']);

/**
 * A request's reasoning, for a model whose template reasons (ignored by others): `enabled` is the
 * template's `enable_thinking`; `budgetTokens` bounds the tokens generated inside the think block,
 * after which the engine writes `</think>` itself and the answer follows. Off on a template that
 * ignores `enable_thinking` (its prompt opens the block anyway) is a budget of 0.
 */
export const reasoningRequestSchema = z.object({ enabled: z.boolean(), budgetTokens: count.optional() });
export type ReasoningRequest = z.infer<typeof reasoningRequestSchema>;

const modelSummarySchema = z.object({
  id: z.string(),
  path: z.string(),
  architecture: z.string(),
  contextLength: count,
  vocabSize: count,
  /** Cells of the engine's context, shared by all sequences. */
  engineContext: count,
  maxSequences: count,
  /** How this model writes tool calls (worker/tools/format.ts), detected from its chat template. */
  toolFormat: z.enum(['hermes', 'llama3', 'mistral']),
  /**
   * Null: the chat template does not reason. Otherwise where the output starts with thinking on and
   * off (a ReasoningStream over the generated text starts there: worker/tools/reasoning.ts).
   */
  reasoning: z.object({ thinkingOn: reasoningStartSchema, thinkingOff: reasoningStartSchema }).nullable(),
});
export type ModelSummary = z.infer<typeof modelSummarySchema>;

/** `reasoningTokens`: completion tokens generated inside the think block (its closing tag included); reasoning models only. */
const usageSchema = z.object({ promptTokens: count, completionTokens: count, cachedTokens: count, reasoningTokens: count.optional() });
export type Usage = z.infer<typeof usageSchema>;

const finishReasonSchema = z.enum(['stop', 'length', 'abort']);
export type FinishReason = z.infer<typeof finishReasonSchema>;

const ms = z.number().nonnegative();
/**
 * Where the step loop's time went since start, in milliseconds: the boundary's bookkeeping (admission,
 * spills, restores, write-behind), waiting for each step's decode call, and taking its tokens; and,
 * inside the decode call (the addon's timings), waiting for a thread, llama_decode, sampling, and the
 * completion's trip back to the inference thread.
 */
const stepTimingsSchema = z.object({
  boundaryMs: ms,
  decodeCallMs: ms,
  acceptMs: ms,
  native: z.object({ decodes: count, tokens: count, queuedMs: ms, decodeMs: ms, sampleMs: ms, settleMs: ms }),
});
export type StepTimings = z.infer<typeof stepTimingsSchema>;

const engineStatsSchema = z.object({
  activeSequences: count,
  /** Sequences holding an idle agent's cache (hot tier), reclaimable. */
  idleSequences: count,
  freeSequences: count,
  queuedRequests: count,
  /** KV cells holding tokens of any sequence. */
  usedCells: count,
  totalCells: count,
  /** The block pool over those cells: blocks reserved for active requests and held by hot agents. */
  blockSize: count,
  usedBlocks: count,
  totalBlocks: count,
  /** Blocks held by idle agents (hot tier): reclaimable, so not part of the pool's pressure. */
  idleBlocks: count,
  /** Idle agents' exported states in the RAM tier, and their bytes. */
  ramAgents: count,
  ramBytes: count,
  steps: count,
  /** Tokens sampled by decode steps since start (end tokens included): throughput is its rate. */
  sampledTokens: count,
  /** Steps whose one decode call carried tokens of more than one sequence. */
  multiSequenceSteps: count,
  timings: stepTimingsSchema,
});
export type EngineStats = z.infer<typeof engineStatsSchema>;

/**
 * A request's trace context, W3C Trace Context headers as a propagation carrier (worker/tracing/):
 * present only while tracing is on, it tells the inference thread to time the request's phases and
 * travels with the agent's turn into its piscina write, so each thread's spans join the request's trace.
 */
export const traceCarrierSchema = z.object({ traceparent: z.string().max(64), tracestate: z.string().max(512).optional() });
export type TraceCarrier = z.infer<typeof traceCarrierSchema>;

// front → inference
export const generateSchema = z.object({
  type: z.literal('generate'),
  requestId,
  /** Validated on the front (shared/agent-id.ts): whose cache this request reads and extends. */
  agentId: z.string().min(1).max(128),
  input: generateInputSchema,
  sampling: samplingSchema,
  /** Absent: until an end token or the engine's default cap (bounded by the context). */
  maxTokens: z.number().int().positive().optional(),
  /** Generation ends before any of these strings; they are not part of the output. */
  stop: z.array(z.string().min(1)).max(16),
  /**
   * Whose cached prefixes this request may reuse, and who may reuse its own: requests of one scope
   * share (an API key's id, or '*'); absent: only its own agent's cache (sharing off).
   */
  shareScope: z.string().min(1).max(128).optional(),
  /**
   * No client named the agent: its id was derived from the conversation's opening. Such requests
   * are independent, so one that finds its agent busy runs at once, beside it, instead of in order.
   */
  agentIdDerived: z.boolean().optional(),
  /** Absent: the template's default (Qwen3 thinks), unbounded but by max tokens. */
  reasoning: reasoningRequestSchema.optional(),
  /** Absent while tracing is off: the thread then times nothing. */
  trace: traceCarrierSchema.optional(),
});
/** Idempotent: aborting an unknown or finished request does nothing. Applied between steps. */
export const abortSchema = z.object({ type: z.literal('abort'), requestId });
export const statsRequestSchema = z.object({ type: z.literal('stats_request'), requestId });
/** The inference thread's metrics registry as prom-client JSON (worker/engine/metrics.ts); answered by `metrics`, at once, even during a swap. */
export const metricsRequestSchema = z.object({ type: z.literal('metrics_request'), requestId });
/** How many prompt tokens `input` is, rendered and tokenized exactly as `generate` would; answered by `token_count` or `failed`. */
export const countTokensSchema = z.object({ type: z.literal('count_tokens'), requestId, input: generateInputSchema, reasoning: reasoningRequestSchema.optional() });
/**
 * Stop admitting (later requests fail ERR_DRAINING), answer waiting requests ERR_DRAINING, let running
 * ones finish, write every idle agent's unwritten turn to its cache file; then `drained`.
 */
export const drainSchema = z.object({ type: z.literal('drain') });
/**
 * The Agents API (worker/engine/kv/agents.ts): list every agent a tier holds, inspect one, its tier
 * totals, or forget one (`evictOnly`: from hot and RAM only, its disk file kept or written first).
 * Answered by `agents_result`, or `failed` (ERR_NOT_FOUND, ERR_CONFLICT while the agent has a request).
 */
export const agentsRequestSchema = z.object({
  type: z.literal('agents_request'),
  requestId,
  op: z.enum(['list', 'get', 'delete', 'stats']),
  agentId: z.string().min(1).max(128).optional(),
  evictOnly: z.boolean().optional(),
});
/** The drain's deadline passed: running requests end now with ERR_DRAINING; the drain then completes. */
export const cutSchema = z.object({ type: z.literal('cut') });
/**
 * The admin API's model swap (worker/inference/swap.ts): let the submitted requests finish, write
 * idle agents' turns, unload, load `path` as model `id`; on failure load the old model back. Frames
 * that arrive meanwhile (but aborts and cuts) wait and are served by whichever model then serves.
 * Answered by `model_swapped`.
 */
export const swapModelSchema = z.object({ type: z.literal('swap_model'), requestId, path: z.string().min(1), id: z.string().min(1).max(256) });
/** Runtime limits, applied from the next step; no field: just read them. Answered by `limits`, or `failed` (400). */
export const configureSchema = z.object({
  type: z.literal('configure'),
  requestId,
  batchTokens: z.number().int().positive().optional(),
  maxQueued: count.optional(),
  maxQueuedTokens: count.optional(),
});
/** Which cache tiers an admin clear empties. */
export const cacheTierNameSchema = z.enum(['hot', 'ram', 'disk']);
export type CacheTierName = z.infer<typeof cacheTierNameSchema>;
/** Drops idle agents' caches from these tiers; agents with a request in flight are skipped. Answered by `caches_cleared`. */
export const clearCachesSchema = z.object({ type: z.literal('clear_caches'), requestId, tiers: z.array(cacheTierNameSchema).min(1) });

// inference → front
/** Where an agent's cache is, fastest first; `active`: a request of the agent is running now. */
export const agentTierSchema = z.enum(['active', 'hot', 'ram', 'disk']);
export type AgentTier = z.infer<typeof agentTierSchema>;
export const agentEntrySchema = z.object({
  id: z.string(),
  tier: agentTierSchema,
  /** Tokens its cells or saved state hold; null for a disk file indexed at startup and not read since. */
  tokens: count.nullable(),
  bytes: count,
  /** Milliseconds since the epoch. */
  lastUsed: z.number().nonnegative(),
});
export type AgentEntry = z.infer<typeof agentEntrySchema>;
const tierTotalsSchema = z.object({ agents: count, tokens: count, bytes: count });
export type TierTotals = z.infer<typeof tierTotalsSchema>;
export const agentTotalsSchema = z.object({
  active: tierTotalsSchema,
  hot: tierTotalsSchema,
  ram: tierTotalsSchema,
  disk: tierTotalsSchema,
  ramBudgetBytes: count,
  diskBudgetBytes: count,
});
export type AgentTotals = z.infer<typeof agentTotalsSchema>;
export const agentsOutcomeSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('list'), agents: z.array(agentEntrySchema) }),
  z.object({ kind: z.literal('deleted'), id: z.string(), tiers: z.array(agentTierSchema) }),
  z.object({ kind: z.literal('stats'), totals: agentTotalsSchema }),
]);
export type AgentsOutcome = z.infer<typeof agentsOutcomeSchema>;

export const readySchema = z.object({ type: z.literal('ready'), model: modelSummarySchema });
/** A swap ended: `model` serves now; with `error` the swap failed and `model` is the old one, loaded back. */
export const modelSwappedSchema = z.object({ type: z.literal('model_swapped'), requestId, model: modelSummarySchema, error: errorPayloadSchema.optional() });
export const runtimeLimitsSchema = z.object({
  batchTokens: count,
  /** The context's batch size, fixed at start: batchTokens can go no higher. */
  maxBatchTokens: count,
  maxQueued: count,
  maxQueuedTokens: count,
});
export type RuntimeLimits = z.infer<typeof runtimeLimitsSchema>;
export const limitsSchema = z.object({ type: z.literal('limits'), requestId, limits: runtimeLimitsSchema });
const clearedCountsSchema = z.object({ hot: count, ram: count, disk: count });
export type ClearedCounts = z.infer<typeof clearedCountsSchema>;
/** Agents whose caches left each tier; `skipped`: agents with a request in flight, left alone. */
export const cachesClearedSchema = z.object({ type: z.literal('caches_cleared'), requestId, cleared: clearedCountsSchema, skipped: z.array(z.string()) });
/** Where a request's reused tokens came from; `shared`: another agent's cache; `miss` when none were reused. */
export const cacheTierSchema = z.enum(['hot', 'ram', 'disk', 'shared', 'miss']);
export type CacheTier = z.infer<typeof cacheTierSchema>;
/** Where another agent's shared prefix lay: its cells in the context (running or idle), its RAM state or its file. */
export const sharedFromSchema = z.enum(['active', 'hot', 'ram', 'disk']);
export type SharedFrom = z.infer<typeof sharedFromSchema>;

/** The request was admitted and its prompt tokenized; tokens follow. `cachedTokens` were reused, not computed. */
export const startedSchema = z.object({
  type: z.literal('started'),
  requestId,
  promptTokens: count,
  cachedTokens: count,
  cacheTier: cacheTierSchema,
  sharedFrom: sharedFromSchema.optional(),
});
/** `text`: complete UTF-8 characters only, with a possible stop string withheld until ruled out. */
export const tokensSchema = z.object({ type: z.literal('tokens'), requestId, text: z.string(), tokenCount: count });
/** `stopSequence`: the stop string that ended generation (finishReason `stop`); absent for an end token. */
export const doneSchema = z.object({
  type: z.literal('done'),
  requestId,
  finishReason: finishReasonSchema,
  usage: usageSchema,
  stopSequence: z.string().min(1).optional(),
});
export const failedSchema = z.object({ type: z.literal('failed'), requestId, error: errorPayloadSchema });
export const statsSchema = z.object({ type: z.literal('stats'), requestId, stats: engineStatsSchema });
/** `json`: prom-client's `getMetricsAsJSON()` as JSON text, merged by the front (AggregatorRegistry.aggregate). */
export const metricsSchema = z.object({ type: z.literal('metrics'), requestId, json: z.string() });
export const agentsResultSchema = z.object({ type: z.literal('agents_result'), requestId, outcome: agentsOutcomeSchema });
export const tokenCountSchema = z.object({ type: z.literal('token_count'), requestId, inputTokens: count });
/** An agent's cache file was written (the disk tier). */
export const persistedSchema = z.object({ type: z.literal('persisted'), agentId: z.string(), bytes: count });
/**
 * An agent's cache file could not be written: `reason` is the errno code (ENOSPC, EROFS, ...) or
 * `ERR_WRITER_EXITED` / `unknown`, a bounded metric label; the turn is still served, the file is older or missing.
 */
export const persistFailedSchema = z.object({ type: z.literal('persist_failed'), agentId: z.string(), reason: z.string().max(64), message: z.string() });
const spanAttributeSchema = z.union([z.string(), z.number(), z.boolean(), z.array(z.string())]);
/**
 * A span timed on the inference or a piscina thread, made into an OpenTelemetry span by the front
 * (worker/tracing/thread-spans.ts) under `parent`; times are epoch milliseconds.
 */
export const threadSpanSchema = z.object({
  name: z.string().min(1).max(64),
  parent: traceCarrierSchema,
  startMs: ms,
  endMs: ms,
  attributes: z.record(z.string(), spanAttributeSchema),
});
export type ThreadSpan = z.infer<typeof threadSpanSchema>;
/** Spans of a traced request's phases (posted before its `done` or `failed`), or of a traced turn's cache file write. */
export const spansSchema = z.object({ type: z.literal('spans'), spans: z.array(threadSpanSchema).min(1) });
/** The drain is over: `persisted` turns were written by it, `cut` requests were ended unfinished. */
export const drainedSchema = z.object({ type: z.literal('drained'), persisted: count, cut: count });
/** The inference thread cannot go on (model failed to load, fatal decode error). */
export const engineDeadSchema = z.object({ type: z.literal('engine_dead'), error: errorPayloadSchema });

export const frontToInferenceSchema = z.discriminatedUnion('type', [
  generateSchema,
  abortSchema,
  statsRequestSchema,
  metricsRequestSchema,
  countTokensSchema,
  agentsRequestSchema,
  drainSchema,
  cutSchema,
  swapModelSchema,
  configureSchema,
  clearCachesSchema,
]);
export const inferenceToFrontSchema = z.discriminatedUnion('type', [
  readySchema,
  startedSchema,
  tokensSchema,
  doneSchema,
  failedSchema,
  statsSchema,
  metricsSchema,
  tokenCountSchema,
  agentsResultSchema,
  persistedSchema,
  persistFailedSchema,
  drainedSchema,
  engineDeadSchema,
  modelSwappedSchema,
  limitsSchema,
  cachesClearedSchema,
  spansSchema,
]);

export type GenerateMessage = z.infer<typeof generateSchema>;
export type AbortMessage = z.infer<typeof abortSchema>;
export type StatsRequestMessage = z.infer<typeof statsRequestSchema>;
export type ReadyMessage = z.infer<typeof readySchema>;
export type StartedMessage = z.infer<typeof startedSchema>;
export type TokensMessage = z.infer<typeof tokensSchema>;
export type DoneMessage = z.infer<typeof doneSchema>;
export type FailedMessage = z.infer<typeof failedSchema>;
export type StatsMessage = z.infer<typeof statsSchema>;
export type CountTokensMessage = z.infer<typeof countTokensSchema>;
export type TokenCountMessage = z.infer<typeof tokenCountSchema>;
export type AgentsRequestMessage = z.infer<typeof agentsRequestSchema>;
export type AgentsResultMessage = z.infer<typeof agentsResultSchema>;
export type PersistedMessage = z.infer<typeof persistedSchema>;
export type PersistFailedMessage = z.infer<typeof persistFailedSchema>;
export type EngineDeadMessage = z.infer<typeof engineDeadSchema>;
export type DrainedMessage = z.infer<typeof drainedSchema>;
export type SwapModelMessage = z.infer<typeof swapModelSchema>;
export type ConfigureMessage = z.infer<typeof configureSchema>;
export type ClearCachesMessage = z.infer<typeof clearCachesSchema>;
export type ModelSwappedMessage = z.infer<typeof modelSwappedSchema>;
export type LimitsMessage = z.infer<typeof limitsSchema>;
export type CachesClearedMessage = z.infer<typeof cachesClearedSchema>;
export type SpansMessage = z.infer<typeof spansSchema>;
export type FrontToInference = z.infer<typeof frontToInferenceSchema>;
export type InferenceToFront = z.infer<typeof inferenceToFrontSchema>;
