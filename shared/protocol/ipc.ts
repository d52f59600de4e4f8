/**
 * The typed messages between the supervisor and its worker processes, over the IPC channel that
 * `child_process.fork` opens. Every message travels as `[IPC_VERSION, message]` and is validated
 * where it is received, version first: the two ends are usually the same build, but a rolling restart
 * onto an upgraded install can pair an old supervisor with a new worker, and a malformed or foreign
 * message is a bug to log, never a state change to guess at. Bump IPC_VERSION on any change an
 * older peer would misread.
 *
 * Messages added later leave IPC_VERSION alone when an older peer simply rejects them as invalid (it
 * logs them and changes nothing) and the sender copes with no answer: the metrics messages are such,
 * so an old supervisor and a new worker still agree on everything else during an upgrade's rolling
 * restart, where a bumped version would make every message between them invalid.
 *
 * The channel itself is a message too: a worker whose channel closes knows its supervisor died and
 * exits, so no worker outlives its supervisor. A worker that cannot serve says `engine_dead` before it
 * exits, so the supervisor never has to guess why it went away.
 */
import type { ChildProcess } from 'node:child_process';
import type { Socket } from 'node:net';
import { z } from 'zod';
import { errorPayloadSchema } from './messages.js';
import type { MetricFamilyJson } from '../metric-aggregation.js';

export const IPC_VERSION = 1;

/**
 * The environment variable that carries a worker's config (JSON, already resolved by the supervisor).
 * Not argv: later configs hold API keys, and argv is readable by every user of the machine.
 */
export const workerConfigEnv = 'SEMANTIC_WORKER_CONFIG';

const port = z.number().int().min(1).max(65535);
/** Pairs an answer with its question; each side numbers its own questions. */
const id = z.number().int().nonnegative();

/** JSON turns NaN and ±Infinity into null: read back as NaN, which Prometheus's text format writes as such. */
const sampleValue = z
  .number()
  .nullable()
  .transform((value) => value ?? Number.NaN);
const metricFamilySchema = z.object({
  name: z.string().min(1).max(256),
  help: z.string().max(4096),
  type: z.string().max(32),
  aggregator: z.string().max(32),
  values: z
    .array(
      z.object({
        value: sampleValue,
        labels: z.record(z.string(), z.union([z.string(), z.number()])),
        metricName: z.string().max(256).optional(),
      }),
    )
    .max(100_000),
}) satisfies z.ZodType<MetricFamilyJson, unknown>;

const workerMessageSchema = z.discriminatedUnion('type', [
  /** Up, its IPC listener attached; once its model is ready it says `listening`, then `ready`. */
  z.object({ type: z.literal('starting') }),
  /** Ready to serve connections on the supervisor's port (the supervisor's listener hands them over). */
  z.object({ type: z.literal('listening'), port }),
  /** Model loaded and warmed up: the worker serves requests now. */
  z.object({ type: z.literal('ready'), port, model: z.string() }),
  /** The engine cannot serve; the worker exits right after sending this. */
  z.object({ type: z.literal('engine_dead'), error: errorPayloadSchema }),
  /** Drain began: the worker gets no new connections (its readiness probe says 503). */
  z.object({ type: z.literal('draining') }),
  /**
   * Drain over: the worker exits right after sending this, with `code` (0, or ExitCode.DrainCut when
   * the deadline or a second signal cut `cut` requests short).
   */
  z.object({ type: z.literal('stopped'), code: z.number().int().nonnegative(), cut: z.number().int().nonnegative() }),
  /**
   * The worker's admin API asked for another model (POST /admin/model, the file already checked): the
   * supervisor answers `swap_answer` and, if it accepts, replaces every worker with one on that model.
   */
  z.object({ type: z.literal('swap_model'), path: z.string().min(1), id: z.string().min(1) }),
  /** A scrape of GET /metrics reached this worker: it asks for the whole fleet's exposition (`metrics_answer`). */
  z.object({ type: z.literal('metrics_request'), id }),
  /** The answer to `collect_metrics`: this process's metrics, as prom-client's `registry.getMetricsAsJSON()`. */
  z.object({ type: z.literal('metrics_report'), id, metrics: z.array(metricFamilySchema).max(10_000) }),
]);

/**
 * How a draining worker treats requests that still arrive on its open keep-alive connections:
 * `shutdown` answers them 503 + Connection: close + Retry-After (the service is going away);
 * `handover` serves them, with Connection: close, because a replacement already listens on the
 * port (a rolling restart): the client's next connection reaches the replacement, and no request fails.
 */
export const drainModes = ['shutdown', 'handover'] as const;
export type DrainMode = (typeof drainModes)[number];

const supervisorMessageSchema = z.discriminatedUnion('type', [
  /** Drain (docs/operations.md) and exit. */
  z.object({ type: z.literal('drain'), mode: z.enum(drainModes) }),
  /** A client connection the supervisor accepted, sent along as the message's handle: serve it. */
  z.object({ type: z.literal('connection') }),
  /** Whether a `swap_model` was accepted (a rolling restart onto the model has begun), or why not. */
  z.object({ type: z.literal('swap_answer'), accepted: z.boolean(), reason: z.string().optional() }),
  /** A fleet scrape is being put together: report your metrics (`metrics_report` with this id). */
  z.object({ type: z.literal('collect_metrics'), id }),
  /**
   * The fleet's exposition for the worker's `metrics_request` `id`: the body of its scrape's answer.
   * With `error`, the supervisor could not put it together: the worker answers with its own metrics.
   */
  z.object({ type: z.literal('metrics_answer'), id, text: z.string(), contentType: z.string().min(1), error: z.string().optional() }),
]);

export type WorkerMessage = z.infer<typeof workerMessageSchema>;
export type SupervisorMessage = z.infer<typeof supervisorMessageSchema>;

/** A message that failed validation, as a reason to log. */
export interface InvalidMessage {
  invalid: string;
}

function parse<T>(schema: z.ZodType<T>, raw: unknown): T | InvalidMessage {
  if (!Array.isArray(raw) || raw.length !== 2) return { invalid: 'not an [IPC_VERSION, message] envelope' };
  const [version, message] = raw as [unknown, unknown];
  if (version !== IPC_VERSION) return { invalid: `IPC version ${String(version)} is not the supported version ${IPC_VERSION}` };
  const parsed = schema.safeParse(message);
  return parsed.success ? parsed.data : { invalid: z.prettifyError(parsed.error) };
}

/** What goes on the channel: the message in its versioned envelope. */
function envelope(message: WorkerMessage | SupervisorMessage): [number, WorkerMessage | SupervisorMessage] {
  return [IPC_VERSION, message];
}

export function parseWorkerMessage(raw: unknown): WorkerMessage | InvalidMessage {
  return parse(workerMessageSchema, raw);
}

export function parseSupervisorMessage(raw: unknown): SupervisorMessage | InvalidMessage {
  return parse(supervisorMessageSchema, raw);
}

export function isInvalid<T extends object>(message: T | InvalidMessage): message is InvalidMessage {
  return 'invalid' in message;
}

/** Supervisor side. False when the worker's channel is already closed (it is exiting). */
export function sendToWorker(worker: ChildProcess, message: SupervisorMessage): boolean {
  if (!worker.connected) return false;
  worker.send(envelope(message));
  return true;
}

/**
 * Supervisor side: hands a client connection to the worker (Node passes the socket's descriptor and
 * closes the supervisor's copy). False when the worker's channel is closed.
 */
export function sendConnectionToWorker(worker: ChildProcess, socket: Socket): boolean {
  if (!worker.connected) return false;
  const message: SupervisorMessage = { type: 'connection' };
  // send's false only says the channel's backlog is long: the socket is still queued and goes out.
  worker.send(envelope(message), socket, { keepOpen: false }, (error) => error && socket.destroy());
  return true;
}

/** Worker side: is this process a forked worker with a channel to its supervisor? */
export function hasSupervisor(): boolean {
  return typeof process.send === 'function' && process.connected;
}

/** Worker side. Resolves once the message is handed to the channel, so a worker can send and then exit. */
export function sendToSupervisor(message: WorkerMessage): Promise<void> {
  return new Promise((resolve) => {
    if (!hasSupervisor()) {
      resolve();
      return;
    }
    process.send?.(envelope(message), undefined, undefined, () => resolve());
  });
}

export interface SupervisorChannelHandlers {
  onMessage(message: Exclude<SupervisorMessage, { type: 'connection' }>): void;
  /** A client connection to serve. */
  onConnection(socket: Socket): void;
  onInvalid(reason: string): void;
  /** The channel closed: the supervisor died (or closed it on purpose). */
  onDisconnect(): void;
}

/** Worker side: listens on the channel for the rest of the process's life. */
export function listenToSupervisor(handlers: SupervisorChannelHandlers): void {
  process.on('message', (raw: unknown, handle: unknown) => {
    const message = parseSupervisorMessage(raw);
    if (isInvalid(message)) handlers.onInvalid(message.invalid);
    else if (message.type !== 'connection') handlers.onMessage(message);
    else if (handle !== undefined && handle !== null) handlers.onConnection(handle as Socket);
    else handlers.onInvalid('a connection message without its socket');
  });
  process.once('disconnect', () => handlers.onDisconnect());
}
