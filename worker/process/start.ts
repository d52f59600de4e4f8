/**
 * One worker process's server: the node:http front on the main thread plus the inference thread behind the
 * engine client. It listens before the model is loaded, so /health/live answers during a long load
 * while chat requests get 503 ERR_NOT_READY until `ready` resolves.
 */
import type { Socket } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import type { Logger } from 'pino';
import type { ModelSummary } from '../../shared/protocol/messages.js';
import { splitTierBudget } from '../../shared/budgets.js';
import { EngineClient } from '../engine-client.js';
import { openAIRoutes } from '../api/openai/chat.js';
import { anthropicRoutes, type AnthropicSettings } from '../api/anthropic/messages.js';
import { completionRoutes } from '../api/openai/completions.js';
import { responsesRoutes } from '../api/responses/responses.js';
import { ResponseStore } from '../api/responses/store.js';
import { agentRoutes } from '../api/ops/agents.js';
import { adminRoutes, type AdminOptions, type SwapForwarder } from '../api/ops/admin.js';
import { drainWorker, type DrainOptions, type DrainOutcome } from './drain.js';
import { readyRoute, startupRoute, type ReadinessLimits } from '../api/ops/health.js';
import { createRouter, liveRoute, type Route, type Router } from '../http/router.js';
import { createHttpServer } from '../http/http-server.js';
import { AccessControl, isLoopbackHost, type Caller, type RouteAccess } from '../http/access.js';
import { RateLimiter, type AgentGate } from '../http/rate-limit.js';
import type { AccessSettings } from '../../shared/server-settings.js';
import { HttpMetrics } from '../http/metrics.js';
import { metricsRoute, type FleetMetricsSource } from '../api/ops/metrics.js';
import { ProcessMetrics } from '../metrics/process-metrics.js';
import type { MetricFamilyJson } from '../../shared/metric-aggregation.js';
import { engineStatsRoute } from '../api/ops/debug.js';
import type { InferenceOptions } from '../../shared/inference-options.js';
import { sweepTempFiles } from '../persistence/temp-files.js';

export interface WorkerServerOptions {
  host: string;
  /** 0 picks a free port; `WorkerServer.port` tells which. */
  port: number;
  /** Request bodies over this size get 413. */
  maxBodyBytes: number;
  /** How long a client may take to send headers and a whole request (defaults: http-server.ts). */
  headersTimeoutMs?: number;
  requestTimeoutMs?: number;
  /** Above these, /health/ready says busy. */
  readyMaxPoolPercent: number;
  /** API keys and rate limits; absent: every route open, no limits (tests of other parts). */
  access?: AccessSettings;
  /**
   * A supervisor's worker: it never binds the port. The supervisor accepts connections and hands them
   * over (`adopt`) once the worker said it is ready (supervisor/dispatcher.ts). Alone (`serve`), a
   * process listens at once so that its probes answer during a long load.
   */
  connectionsFromSupervisor?: boolean;
  /** A worker of `semantic supervise`: admin model swaps go to the supervisor, which owns the model path. */
  forwardSwap?: SwapForwarder;
  /** A worker of `semantic supervise`: GET /metrics answers with the whole fleet's metrics. */
  fleetMetrics?: FleetMetricsSource;
  /** The only folder an admin model swap may load from; absent: the folder of `inference.modelPath`. */
  modelsDir?: string;
  inference: InferenceOptions;
  logger: Logger;
  /** The inference thread's module; only tests change it (to a fake thread). */
  inferenceThreadUrl?: URL;
}

export interface WorkerServer {
  /** The port bound (or to be bound by `listen`). */
  port: number;
  /** Binds the port if it is not bound yet (a supervisor's worker binds nothing); resolves with it. */
  listen(): Promise<number>;
  /** Serves a connection the supervisor accepted. */
  adopt(socket: Socket): void;
  /** Resolves when the model is loaded; rejects if the inference thread dies first. */
  ready: Promise<ModelSummary>;
  engine: EngineClient;
  /** This process's full metrics (front and inference thread merged), as prom-client JSON: what `/metrics` serialises, and a fleet scrape adds up. */
  processMetricsJson(): Promise<MetricFamilyJson[]>;
  /** The multi-phase drain (drain.ts); the server is still open afterwards: close it. */
  drain(options: DrainOptions): Promise<DrainOutcome>;
  /** Stops listening, drops open connections and stops the inference thread. */
  close(): Promise<void>;
}

function routes(
  engine: EngineClient,
  router: Pick<Router, 'draining' | 'inFlight'>,
  limits: ReadinessLimits,
  agentGate: AgentGate,
  swaps: Pick<AdminOptions, 'forwardSwap' | 'modelsDir'>,
  responses: ResponseStore,
  settings: AnthropicSettings,
): Route[] {
  return [
    liveRoute(),
    startupRoute(engine),
    readyRoute(engine, router, limits),
    engineStatsRoute(engine),
    ...openAIRoutes(engine, agentGate),
    ...completionRoutes(engine, agentGate),
    ...responsesRoutes(engine, responses, agentGate),
    ...anthropicRoutes(engine, agentGate, settings),
    ...agentRoutes(engine),
    ...adminRoutes(engine, { router, readiness: limits, ...swaps }),
  ];
}

/**
 * A request's prefix-sharing scope: per key (the key's non-secret id; one scope for all when no keys
 * are set), every agent, or none.
 */
function shareScopeOf(mode: AccessSettings['prefixSharing'], keyless: boolean, caller: () => Caller): string | undefined {
  if (mode === 'off') return undefined;
  return mode === 'all' || keyless ? '*' : caller().keyId;
}

/** Keys checked on every routed request, then the key's rate; the agent's rate once a route knows the agent. */
function accessRules(settings: AccessSettings | undefined, host: string): { guard: (headers: ReadonlyMap<string, string>, access: RouteAccess) => void; agentGate: AgentGate } {
  const control = new AccessControl(settings?.apiKeys ?? [], settings?.adminKey, isLoopbackHost(host));
  const perKey = new RateLimiter(settings?.perKeyPerMinute ?? 0, settings?.burst ?? 1);
  const perAgent = new RateLimiter(settings?.perAgentPerMinute ?? 0, settings?.burst ?? 1);
  return {
    guard: (headers, access) => {
      const caller = control.check(headers, access);
      if (access !== 'public') perKey.check(caller.keyId, 'API key');
    },
    agentGate: (agentId, headers) => {
      perAgent.check(agentId, 'agent');
      return shareScopeOf(settings?.prefixSharing ?? 'key', (settings?.apiKeys.length ?? 0) === 0, () => control.check(headers, 'user'));
    },
  };
}

export async function startWorkerServer(options: WorkerServerOptions): Promise<WorkerServer> {
  const { logger } = options;
  // Before the inference thread writes: a crash mid-write leaves temp files outside the disk budget.
  const swept = await sweepTempFiles(options.inference.cacheDir);
  logger.info({ cacheDir: options.inference.cacheDir, ...swept }, 'stale temp files swept');
  // Stored responses sit beside the agents' caches, in the same tier, within the same budget (budgets.ts).
  const { cacheDir, diskBudgetBytes, ramBudgetBytes } = options.inference;
  const storeOnDisk = diskBudgetBytes > 0;
  const tierSplit = splitTierBudget(storeOnDisk ? diskBudgetBytes : ramBudgetBytes);
  const inference = storeOnDisk ? { ...options.inference, diskBudgetBytes: tierSplit.agentBytes } : { ...options.inference, ramBudgetBytes: tierSplit.agentBytes };
  const engine = new EngineClient({
    inference,
    logger: logger.child({ component: 'engine-client' }),
    ...(options.inferenceThreadUrl === undefined ? {} : { threadUrl: options.inferenceThreadUrl }),
  });
  const http = createHttpServer({
    maxBodyBytes: options.maxBodyBytes,
    ...(options.headersTimeoutMs === undefined ? {} : { headersTimeoutMs: options.headersTimeoutMs }),
    ...(options.requestTimeoutMs === undefined ? {} : { requestTimeoutMs: options.requestTimeoutMs }),
    onInternalError: (error) => logger.error({ err: error }, 'uncaught error in an HTTP callback (a bug)'),
  });
  const responses = await ResponseStore.open(storeOnDisk ? join(cacheDir, 'responses') : undefined, tierSplit.responseBytes);
  const limits = { maxQueued: options.inference.maxQueued, maxPoolPercent: options.readyMaxPoolPercent };
  // The readiness route reports the router's drain state, so the table is filled once the router exists.
  const table: Route[] = [];
  const { guard, agentGate } = accessRules(options.access, options.host);
  const metrics = new HttpMetrics(engine.diskWrites, options.inference.metricsBuckets?.httpDuration);
  const processMetrics = new ProcessMetrics(metrics.registry, () => engine.metricsJson());
  const router = createRouter({ routes: table, logger, guard, onResponse: (answered) => metrics.observe(answered) });
  const swaps = { forwardSwap: options.forwardSwap, modelsDir: resolve(options.modelsDir ?? dirname(options.inference.modelPath)) };
  table.push(
    ...routes(engine, router, limits, agentGate, swaps, responses, { kvUnified: options.inference.kvUnified }),
    metricsRoute(processMetrics, options.access?.metricsAccess ?? 'public', options.fleetMetrics),
  );
  http.handle(router.handle);
  let port = options.port;
  let bound = false;
  const listen = async (): Promise<number> => {
    if (bound) return port;
    if (options.connectionsFromSupervisor !== true) port = await http.listen(options.host, options.port);
    bound = true;
    logger.info({ host: options.host, port, from: options.connectionsFromSupervisor === true ? 'supervisor' : 'own listener' }, 'listening');
    return port;
  };
  if (options.connectionsFromSupervisor !== true) {
    await listen().catch(async (error: unknown) => {
      await engine.close();
      throw error;
    });
  }
  engine.ready.then(
    // The cache budgets may be "auto" in the config: the line says what they came to on this machine.
    (model) =>
      logger.info(
        { model: model.id, port, contextSize: model.engineContext, ramCacheBytes: options.inference.ramBudgetBytes, diskCacheBytes: options.inference.diskBudgetBytes },
        'engine ready',
      ),
    () => undefined, // the engine client already logged why it died
  );
  return {
    get port() {
      return port;
    },
    listen,
    adopt: (socket) => http.adopt(socket),
    ready: engine.ready,
    engine,
    // prom-client's types call the type field an enum; its JSON has the type's name, as MetricFamilyJson says.
    processMetricsJson: async () => (await processMetrics.json()) as unknown as MetricFamilyJson[],
    drain: (drainOptions) => drainWorker({ http, router, engine, logger }, drainOptions),
    async close() {
      http.close();
      await engine.close();
    },
  };
}
