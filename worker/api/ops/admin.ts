/**
 * The admin API (docs/operations.md "Admin API"), behind the admin key, the house error shape:
 * - `GET /admin/model`: the model served, and whether a swap is running.
 * - `POST /admin/model` `{path, id?}`: swap the model (drain, unload, load, ready), answered when done:
 *   200 with the new model; 403 ERR_MODEL_PATH_FORBIDDEN for a path outside `--models-dir`; 400
 *   (param `path`) for a file that is not there or not a GGUF, checked before anything is drained; 422
 *   ERR_MODEL_LOAD_FAILED when llama.cpp refused it and the old model was loaded back (it serves
 *   again); 409 while another swap runs.
 * - `GET`/`PATCH /admin/config` `{batch_tokens?, max_queued?, max_queued_tokens?}`: runtime limits,
 *   applied from the next step without a restart.
 * - `POST /admin/caches/clear` `{tiers?}`: idle agents' caches leave those tiers (all by default);
 *   agents with a request in flight are skipped and listed.
 * In supervise mode each worker has its own engine and the supervisor owns the model path: a swap is
 * forwarded to it and becomes a rolling restart onto the new model (202 at once); the other routes
 * act on the worker that took the connection.
 */
import { open, realpath } from 'node:fs/promises';
import { basename, isAbsolute, relative, resolve, sep } from 'node:path';
import { z } from 'zod';
import type { EngineClient } from '../../engine-client.js';
import { BadRequestError, ErrorCode, SemanticError, drainingError } from '../../../shared/errors.js';
import type { ModelSummary, RuntimeLimits } from '../../../shared/protocol/messages.js';
import type { RequestContext, Route, Router } from '../../http/router.js';
import type { ReadinessLimits } from './health.js';
import { badRequestOf, type IssueWording } from '../request-checks.js';

export type AdminEngine = Pick<EngineClient, 'model' | 'swapping' | 'swapModel' | 'limits' | 'clearCaches'>;

export interface AdminOptions {
  router: Pick<Router, 'draining'>;
  /** The readiness probe's limits: its queue limit follows a PATCH of max_queued. */
  readiness: ReadinessLimits;
  /** A worker of `semantic supervise`: a swap is forwarded to the supervisor, a rolling restart (202). */
  forwardSwap?: SwapForwarder | undefined;
  /** The only folder a swap may load from (--models-dir), absolute. */
  modelsDir: string;
}

/** The supervisor's answer to a forwarded swap. */
export interface SwapAnswer {
  accepted: boolean;
  reason?: string | undefined;
}
export type SwapForwarder = (path: string, id: string) => Promise<SwapAnswer>;

const swapSchema = z.strictObject({
  path: z.string().min(1).max(4096),
  id: z
    .string()
    .min(1)
    .max(256)
    .regex(/^[^\p{Cc}]+$/u, 'must not contain control characters')
    .optional(),
});
const configSchema = z.strictObject({
  batch_tokens: z.number().int().min(1).optional(),
  max_queued: z.number().int().min(0).max(100_000).optional(),
  max_queued_tokens: z.number().int().min(0).optional(),
});
const clearSchema = z.strictObject({
  tiers: z
    .array(z.enum(['hot', 'ram', 'disk']))
    .min(1)
    .optional(),
});

/** The admin routes answer in the OpenAI shape; an unknown field is named as not being one. */
const adminWording: IssueWording = {
  unknownField: (param) => `Invalid '${param}': is not a field of this request`,
  badField: (param, message) => `Invalid '${param}': ${message}`,
};

/** A 400 naming the field at fault: an unknown field by its name, a bad value by its path. */
export function parseAdminBody<T>(schema: z.ZodType<T>, body: unknown): T {
  const parsed = schema.safeParse(body);
  if (parsed.success) return parsed.data;
  throw badRequestOf(parsed.error, adminWording);
}

function badField(param: string, message: string): never {
  throw new BadRequestError(adminWording.badField(param, message), param);
}

/** The wire form of a model summary: snake_case. */
export function toApiModel(model: ModelSummary): Record<string, unknown> {
  return {
    id: model.id,
    path: model.path,
    architecture: model.architecture,
    context_length: model.contextLength,
    vocab_size: model.vocabSize,
    engine_context: model.engineContext,
    max_sequences: model.maxSequences,
    tool_format: model.toolFormat,
    // Null: the chat template does not reason; otherwise where output starts, thinking on and off.
    reasoning: model.reasoning === null ? null : { thinking_on: model.reasoning.thinkingOn, thinking_off: model.reasoning.thinkingOff },
  };
}

export function toApiLimits(limits: RuntimeLimits): Record<string, unknown> {
  return {
    object: 'admin.config',
    batch_tokens: limits.batchTokens,
    max_batch_tokens: limits.maxBatchTokens,
    max_queued: limits.maxQueued,
    max_queued_tokens: limits.maxQueuedTokens,
  };
}

/** Whether `path` is `root` or below it (both absolute and normalised). */
function isUnder(path: string, root: string): boolean {
  const rel = relative(root, path);
  return rel === '' || (rel !== '..' && !rel.startsWith('..' + sep) && !isAbsolute(rel));
}

function outsideModelsDir(path: string, modelsDir: string, how: string): SemanticError {
  return new SemanticError(ErrorCode.ModelPathForbidden, `${path} is outside the models dir ${modelsDir}${how}: the admin API loads models only from there (--models-dir)`, {
    param: 'path',
  });
}

/**
 * The file a swap may load: `path` must lie under `modelsDir` as written, `..` resolved (checked before
 * the file is touched, so a refusal tells nothing of files elsewhere), and again once every
 * symbolic link in it is resolved (a link inside pointing outside is refused). Resolves to the real
 * path, which is what gets loaded: a link changed after this check cannot redirect the load.
 */
export async function modelPathUnder(path: string, modelsDir: string): Promise<string> {
  if (!isAbsolute(path)) badField('path', `must be an absolute path; got ${JSON.stringify(path.slice(0, 200))}`);
  const root = resolve(modelsDir);
  const realRoot = await realpath(root).catch(() => undefined);
  if (!isUnder(resolve(path), root) && (realRoot === undefined || !isUnder(resolve(path), realRoot))) throw outsideModelsDir(path, root, '');
  if (realRoot === undefined)
    throw new SemanticError(ErrorCode.ModelPathForbidden, `the models dir ${root} does not exist: no model can be swapped in (--models-dir)`, { param: 'path' });
  const real = await realpath(path).catch(() => undefined);
  if (real === undefined) badField('path', `no readable file at ${path}`);
  if (!isUnder(real, realRoot)) throw outsideModelsDir(path, root, ` once its links are resolved (${real})`);
  return real;
}

/**
 * The file must exist, be a regular file and start with the GGUF magic: checked before anything is
 * drained, so a typo costs the running requests nothing. Whether llama.cpp can load it is the swap's.
 */
export async function checkModelFile(path: string): Promise<void> {
  if (!isAbsolute(path)) badField('path', `must be an absolute path; got ${JSON.stringify(path.slice(0, 200))}`);
  const file = await open(path, 'r').catch(() => undefined);
  if (file === undefined) badField('path', `no readable file at ${path}`);
  try {
    const stats = await file.stat();
    if (!stats.isFile()) badField('path', `${path} is not a regular file`);
    const magic = Buffer.alloc(4);
    const { bytesRead } = await file.read(magic, 0, 4, 0);
    if (bytesRead < 4 || magic.toString('latin1') !== 'GGUF') badField('path', `${path} is not a GGUF file`);
  } finally {
    await file.close();
  }
}

function servedModel(engine: AdminEngine): ModelSummary {
  const model = engine.model;
  if (model === undefined) throw new SemanticError(ErrorCode.NotReady, 'The model is still loading.', { retryAfter: 1 });
  return model;
}

async function swap(context: RequestContext, engine: AdminEngine, options: AdminOptions): Promise<void> {
  const body = parseAdminBody(swapSchema, await context.readJson());
  if (options.router.draining !== undefined) throw drainingError();
  const previous = servedModel(engine);
  if (engine.swapping) throw new SemanticError(ErrorCode.Conflict, 'A model swap is already running.');
  const path = await modelPathUnder(body.path, options.modelsDir);
  await checkModelFile(path);
  const id = body.id ?? basename(body.path, '.gguf');
  if (options.forwardSwap !== undefined) return forward(context, options.forwardSwap, path, id, previous);
  context.log.info({ from: previous.id, to: id, path }, 'model swap started');
  const model = await engine.swapModel(path, id).catch((error: unknown) => {
    context.log.warn({ err: error, path, serving: engine.model?.id }, 'model swap failed');
    throw error;
  });
  context.log.info({ from: previous.id, to: model.id }, 'model swapped');
  context.sendJson(200, { object: 'admin.model', model: toApiModel(model), previous: previous.id, swapping: false });
}

/**
 * Under the supervisor: the swap becomes a rolling restart onto the new model, answered 202 at once
 * (this worker is itself replaced, so it cannot wait for the end). Its log lines say how it ended:
 * `model swapped`, or `model swap failed: back to the old model` when a replacement did not get ready.
 */
async function forward(context: RequestContext, forwardSwap: SwapForwarder, path: string, id: string, previous: ModelSummary): Promise<void> {
  const answer = await forwardSwap(path, id);
  if (!answer.accepted) throw new SemanticError(ErrorCode.Conflict, `The supervisor refused the swap: ${answer.reason ?? 'no reason given'}.`);
  context.log.info({ from: previous.id, to: id, path }, 'model swap forwarded to the supervisor');
  context.sendJson(202, { object: 'admin.model.swap', status: 'rolling_restart', model: { id, path }, previous: previous.id });
}

async function configure(context: RequestContext, engine: AdminEngine, options: AdminOptions): Promise<void> {
  const body = parseAdminBody(configSchema, await context.readJson());
  const limits = await engine.limits({ batchTokens: body.batch_tokens, maxQueued: body.max_queued, maxQueuedTokens: body.max_queued_tokens });
  options.readiness.maxQueued = limits.maxQueued;
  context.log.info({ limits }, 'runtime limits changed');
  context.sendJson(200, toApiLimits(limits));
}

async function clear(context: RequestContext, engine: AdminEngine): Promise<void> {
  // The body is optional: none clears every tier.
  const { headers } = context.exchange;
  const length = headers.get('content-length');
  const empty = (length === undefined || length === '0') && !headers.has('transfer-encoding');
  const body = empty ? {} : parseAdminBody(clearSchema, await context.readJson());
  const tiers = body.tiers ?? ['hot', 'ram', 'disk'];
  const { cleared, skipped } = await engine.clearCaches([...new Set(tiers)]);
  context.sendJson(200, { object: 'admin.caches.cleared', tiers, cleared, skipped });
}

export function adminRoutes(engine: AdminEngine, options: AdminOptions): Route[] {
  const route = (method: Route['method'], path: string, handle: (context: RequestContext) => Promise<void> | void): Route => ({
    method,
    path,
    access: 'admin',
    handle,
  });
  return [
    route('GET', '/admin/model', (context) => context.sendJson(200, { object: 'admin.model', model: toApiModel(servedModel(engine)), swapping: engine.swapping })),
    route('POST', '/admin/model', (context) => swap(context, engine, options)),
    route('GET', '/admin/config', async (context) => context.sendJson(200, toApiLimits(await engine.limits()))),
    route('PATCH', '/admin/config', (context) => configure(context, engine, options)),
    route('POST', '/admin/caches/clear', (context) => clear(context, engine)),
  ];
}
