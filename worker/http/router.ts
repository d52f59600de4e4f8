/**
 * The route table and everything every route shares: request ids, one log line per request, body
 * reading and JSON parsing with their error codes, and the guarantee that whatever a handler throws
 * becomes an answer in the route's error shape (its API family's, or the house shape of
 * error-body.ts) rather than a crash. A route is one more entry in the table passed to `createRouter`.
 */
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import { describeError, ErrorCode, SemanticError, toErrorPayload, type ErrorPayload } from '../../shared/errors.js';
import type { HttpExchange, ResponseHeaders } from './http-exchange.js';
import type { DrainMode } from '../../shared/protocol/ipc.js';
import type { RouteAccess } from './access.js';
import { MAX_JSON_DEPTH, nestsDeeperThan } from '../../shared/json-depth.js';
import { houseErrorBody } from './error-body.js';
import { inRequestSpan, traceIdOf as traceIdOfSpan } from '../tracing/spans.js';

export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

/** Turns an error into the JSON body of the route's API family. */
export type ErrorShape = (error: ErrorPayload) => unknown;

export interface RequestContext {
  /** Echoed from a valid `X-Request-ID` or generated; also the protocol requestId. */
  readonly requestId: string;
  readonly exchange: HttpExchange;
  /** Carries `requestId` (and the client's `traceId`, when it sent a W3C traceparent) in every line. */
  readonly log: Logger;
  /** Adds fields to the request's one completion line (what a generation learnt: agent, tier, tokens, TTFT). */
  annotate(fields: Readonly<Record<string, unknown>>): void;
  /** `:name` segments of the route's path. */
  readonly params: Readonly<Record<string, string>>;
  /** The body as JSON: ERR_UNSUPPORTED_MEDIA_TYPE, ERR_BODY_TOO_LARGE, ERR_INVALID_JSON (also for invalid UTF-8), ERR_ABORTED. */
  readJson(): Promise<unknown>;
  sendJson(status: number, body: unknown, headers?: ResponseHeaders): void;
  /** Answers in the route's error shape with the status from `describeError`; logs ERR_INTERNAL. */
  sendError(error: unknown): void;
}

export interface Route {
  method: HttpMethod;
  /** Exact segments, or `:name` for one segment captured into `params`. */
  path: string;
  /** The error body of the route's API family; default: the router's `fallbackErrorShape`. */
  errorShape?: ErrorShape;
  handle(context: RequestContext): void | Promise<void>;
  /** Served as usual while the server drains (health probes): they report the drain themselves. */
  servedWhileDraining?: boolean;
  /** Who may call it (access.ts); default 'user': an API key when keys are configured. */
  access?: RouteAccess;
}

export interface RouterOptions {
  routes: readonly Route[];
  /** Shape of 404 and 405 answers and of routes that set none; default: the house shape (error-body.ts). */
  fallbackErrorShape?: ErrorShape;
  logger: Logger;
  /**
   * Runs before every routed request's handler (auth, per-key rate limit); what it throws is answered
   * in the route's error shape.
   */
  guard?: (headers: ReadonlyMap<string, string>, access: RouteAccess) => void;
  /** Told of every answered request (the metrics); `route` is the route's pattern, never the raw path. */
  onResponse?: (response: AnsweredRequest) => void;
}

export interface AnsweredRequest {
  route: string;
  method: string;
  /** 0 when the client went away before a status was sent. */
  status: number;
  seconds: number;
  /** The error code answered (shared/errors.ts), if the answer was an error. */
  errorCode?: string;
}

/** While the server drains, what a request arriving on an open keep-alive connection gets (see ipc.ts). */
export type { DrainMode } from '../../shared/protocol/ipc.js';

export interface Router {
  handle(exchange: HttpExchange): void;
  /** From now on requests are treated as `mode` says; the last call wins. */
  drain(mode: DrainMode): void;
  readonly draining: DrainMode | undefined;
  /** Requests not yet answered (or whose stream has not ended), by route path. */
  inFlight(): Record<string, number>;
  /** Resolves once no request is in flight and none has arrived for `quietMs`. */
  whenIdle(quietMs: number): Promise<void>;
}

const validRequestId = /^[A-Za-z0-9._:-]{1,128}$/;

export function chooseRequestId(header: string | undefined): string {
  return header !== undefined && validRequestId.test(header) ? header : randomUUID();
}

export const liveRoute = (): Route => ({
  method: 'GET',
  path: '/health/live',
  servedWhileDraining: true,
  access: 'public',
  handle: (context) => context.sendJson(200, { status: 'alive' }),
});

type Match = { kind: 'route'; route: Route; params: Record<string, string> } | { kind: 'wrong-method'; allowed: HttpMethod[] } | { kind: 'none' };

function matchPath(pattern: string, path: string): Record<string, string> | undefined {
  const want = pattern.split('/');
  const have = path.split('/');
  if (want.length !== have.length) return undefined;
  const params: Record<string, string> = {};
  for (const [i, segment] of want.entries()) {
    const actual = have[i] ?? '';
    if (segment.startsWith(':') && actual !== '') params[segment.slice(1)] = actual;
    else if (segment !== actual) return undefined;
  }
  return params;
}

function findRoute(routes: readonly Route[], method: string, path: string): Match {
  const allowed: HttpMethod[] = [];
  for (const route of routes) {
    const params = matchPath(route.path, path);
    if (params === undefined) continue;
    if (route.method === method) return { kind: 'route', route, params };
    allowed.push(route.method);
  }
  return allowed.length > 0 ? { kind: 'wrong-method', allowed } : { kind: 'none' };
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** `application/json`, or a `+json` type, with any parameters (`; charset=utf-8`). */
const jsonMediaType = /^application\/([a-z0-9.+-]*\+)?json\s*(;|$)/i;

/**
 * A body must say it is JSON. Besides telling a wrong client what to send, this stops a web page from
 * posting to a server on loopback: a JSON content type needs a CORS preflight, forms and text do not.
 */
function requireJsonContentType(exchange: HttpExchange): void {
  const type = exchange.headers.get('content-type');
  if (type !== undefined && jsonMediaType.test(type)) return;
  const sent = type === undefined ? 'no Content-Type' : `Content-Type: ${type.slice(0, 100)}`;
  throw new SemanticError(ErrorCode.UnsupportedMediaType, `The request body must be JSON with Content-Type: application/json; the request has ${sent}.`);
}

async function readJson(exchange: HttpExchange): Promise<unknown> {
  requireJsonContentType(exchange);
  const body = await exchange.body();
  let text: string;
  try {
    text = utf8.decode(body);
  } catch {
    throw new SemanticError(ErrorCode.InvalidJson, 'The request body is not valid UTF-8.');
  }
  if (!/\S/.test(text)) throw new SemanticError(ErrorCode.InvalidJson, 'The request body is empty; expected JSON.');
  if (nestsDeeperThan(text, MAX_JSON_DEPTH)) throw new SemanticError(ErrorCode.BadRequest, `The request body nests arrays and objects more than ${MAX_JSON_DEPTH} levels deep.`);
  try {
    return JSON.parse(text) as unknown;
  } catch (error) {
    throw new SemanticError(ErrorCode.InvalidJson, `The request body is not valid JSON: ${(error as Error).message}`);
  }
}

function errorHeaders(error: ErrorPayload): Record<string, string> {
  const headers: Record<string, string> = { 'Content-Type': 'application/json' };
  if (error.retryAfter !== undefined) headers['Retry-After'] = String(Math.ceil(error.retryAfter));
  return headers;
}

/** A request's log: its child logger and the fields its completion line adds. */
interface RequestLog {
  log: Logger;
  line: Record<string, unknown>;
}

const traceparentPattern = /^[\da-f]{2}-([\da-f]{32})-[\da-f]{16}-[\da-f]{2}$/;

/**
 * The trace id of a W3C `traceparent` header (version-traceid-parentid-flags, lowercase hex), or
 * undefined when there is none or it is malformed or all zeros (invalid by the spec).
 */
export function traceIdOf(traceparent: string | undefined): string | undefined {
  const traceId = traceparentPattern.exec(traceparent?.trim() ?? '')?.[1];
  return traceId === undefined || /^0+$/.test(traceId) ? undefined : traceId;
}

function createContext(exchange: HttpExchange, requestId: string, { log, line }: RequestLog, errorShape: ErrorShape, params: Record<string, string>): RequestContext {
  const sendJson = (status: number, body: unknown, headers: ResponseHeaders = {}): void =>
    exchange.respond(status, { 'Content-Type': 'application/json', ...headers }, JSON.stringify(body));
  return {
    requestId,
    exchange,
    log,
    annotate: (fields) => void Object.assign(line, fields),
    params,
    readJson: () => readJson(exchange),
    sendJson,
    sendError(error) {
      let payload = toErrorPayload(error);
      if (payload.code === ErrorCode.Internal) {
        log.error({ err: error }, 'internal error (a bug)');
        // The client gets the id to report, not our internals.
        payload = { code: ErrorCode.Internal, message: `Internal error; it was logged with request id ${requestId}.` };
      }
      if (exchange.streaming) {
        // Too late for a status: close the connection so the client cannot mistake it for a clean end.
        exchange.destroy();
        return;
      }
      exchange.errorCode = payload.code;
      exchange.respond(describeError(payload.code).status, errorHeaders(payload), JSON.stringify(errorShape(payload)));
    },
  };
}

/** Runs the guard and the handler; whatever they throw or reject with becomes an error answer. */
function run(route: Route, context: RequestContext, guard: RouterOptions['guard']): void {
  try {
    guard?.(context.exchange.headers, route.access ?? 'user');
    const result = route.handle(context);
    if (result instanceof Promise) result.catch((error: unknown) => context.sendError(error));
  } catch (error) {
    context.sendError(error);
  }
}

/** Logs one line (and tells `onResponse`) when the response ended or the client went away. */
function logCompletion(exchange: HttpExchange, { log, line }: RequestLog, route: string, onResponse: RouterOptions['onResponse']): void {
  exchange.onClose((aborted) => {
    const seconds = (performance.now() - exchange.receivedAt) / 1000;
    const durationMs = Math.round(seconds * 10_000) / 10;
    // Tracing on and no traceparent sent: the trace id is the one the server span started with.
    const serverTraceId = traceIdOfSpan(exchange);
    const traced = serverTraceId === undefined || log.bindings().traceId !== undefined ? {} : { traceId: serverTraceId };
    log.info({ method: exchange.method, route, status: exchange.statusCode ?? null, durationMs, aborted, ...traced, ...line }, 'request');
    const errorCode = exchange.errorCode === undefined ? {} : { errorCode: exchange.errorCode };
    onResponse?.({ route, method: exchange.method, status: exchange.statusCode ?? 0, seconds, ...errorCode });
  });
}

/** Requests in flight by route, and when the last one arrived: what a drain waits on. */
class InFlight {
  private readonly byRoute = new Map<string, number>();
  private total = 0;
  private lastArrival = -Infinity;

  /**
   * `traffic` false for probes: a health checker that keeps its connection to a draining worker
   * open must not hold off the handover's quiet period forever.
   */
  track(exchange: HttpExchange, route: string, traffic: boolean): void {
    this.total++;
    if (traffic) this.lastArrival = performance.now();
    this.byRoute.set(route, (this.byRoute.get(route) ?? 0) + 1);
    exchange.onClose(() => {
      this.total--;
      this.byRoute.set(route, (this.byRoute.get(route) ?? 1) - 1);
    });
  }

  snapshot(): Record<string, number> {
    return Object.fromEntries([...this.byRoute].filter(([, count]) => count > 0));
  }

  /** Checked every 50 ms: a drain is seconds long, and this keeps the request path free of waiters. */
  whenIdle(quietMs: number): Promise<void> {
    return new Promise((resolve) => {
      const check = (): void => {
        if (this.total === 0 && performance.now() - this.lastArrival >= quietMs) resolve();
        else setTimeout(check, 50);
      };
      check();
    });
  }
}

export function createRouter(options: RouterOptions): Router {
  const { routes, fallbackErrorShape = houseErrorBody, logger } = options;
  const inFlight = new InFlight();
  let draining: DrainMode | undefined;
  const handle = (exchange: HttpExchange): void => {
    const requestId = chooseRequestId(exchange.headers.get('x-request-id'));
    const traceId = traceIdOf(exchange.headers.get('traceparent'));
    const requestLog: RequestLog = { log: logger.child(traceId === undefined ? { requestId } : { requestId, traceId }), line: {} };
    exchange.baseHeaders = () => ({
      'X-Request-ID': requestId,
      'X-Response-Time': `${(performance.now() - exchange.receivedAt).toFixed(1)}ms`,
    });
    const match = findRoute(routes, exchange.method, exchange.path);
    const routePath = match.kind === 'route' ? match.route.path : exchange.path;
    // Unrouted paths are any string a client sends: one label value for all of them keeps metrics bounded.
    logCompletion(
      exchange,
      requestLog,
      routePath,
      options.onResponse === undefined ? undefined : (answered) => options.onResponse?.(match.kind === 'route' ? answered : { ...answered, route: '(unrouted)' }),
    );
    const exempt = match.kind === 'route' && match.route.servedWhileDraining === true;
    inFlight.track(exchange, match.kind === 'route' ? routePath : '(unrouted)', !exempt);
    if (draining !== undefined && !exempt) exchange.closeConnectionAfter = true;
    if (draining === 'shutdown' && !exempt) {
      const shape = match.kind === 'route' ? (match.route.errorShape ?? fallbackErrorShape) : fallbackErrorShape;
      return createContext(exchange, requestId, requestLog, shape, {}).sendError(
        new SemanticError(ErrorCode.Draining, 'The server is shutting down; retry on a new connection.', { retryAfter: 1 }),
      );
    }
    if (match.kind === 'route') {
      const { route, params } = match;
      return inRequestSpan(exchange, routePath, () => run(route, createContext(exchange, requestId, requestLog, route.errorShape ?? fallbackErrorShape, params), options.guard));
    }
    const context = createContext(exchange, requestId, requestLog, fallbackErrorShape, {});
    if (match.kind === 'none') return context.sendError(new SemanticError(ErrorCode.NotFound, `No route for ${exchange.method} ${exchange.path}.`));
    const allowed = match.allowed.join(', ');
    const payload = { code: ErrorCode.MethodNotAllowed, message: `${exchange.method} is not allowed on ${exchange.path}; use ${allowed}.` };
    exchange.respond(405, { ...errorHeaders(payload), Allow: allowed }, JSON.stringify(fallbackErrorShape(payload)));
  };
  return {
    handle,
    drain: (mode) => void (draining = mode),
    get draining() {
      return draining;
    },
    inFlight: () => inFlight.snapshot(),
    whenIdle: (quietMs) => inFlight.whenIdle(quietMs),
  };
}
