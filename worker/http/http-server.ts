/**
 * The one adapter around the HTTP/1.1 server: Node's `node:http` (llhttp). Nothing else imports
 * `node:http`'s server, so another front can replace it here alone.
 *
 * Why not uWebSockets.js, which the product started on: the only build that loads on Node 20 with
 * glibc 2.36 (npm `uwebsockets@3.0.6`, uWS v20.57) answers a request line split over two TCP segments
 * with 505, closes pipelined requests with no answer to any of them (by design in every uWS release),
 * meets bad header bytes with silence until a 10 s timeout, and writes its own HTML error pages that
 * no hook can replace (../shared/reference/uws-http-facts.md). llhttp does all of that right and lets
 * us answer protocol errors in the API's JSON shape.
 *
 * Rules this file absorbs so that callers cannot break them:
 * - An exchange's methods are no-ops once its response ended or its client went away.
 * - Request bodies have a size limit; over it the client gets a readable 413: the rest of its body is
 *   read and dropped for a moment before the close, since closing a socket with unread bytes sends a
 *   reset that most clients report instead of the response.
 * - Protocol errors (bad framing, headers too large, timeouts) are answered by `protocolError`, in the
 *   house error shape, then the connection closes.
 * - An exception thrown inside a callback reports to `onInternalError` instead of crashing the process.
 */
import { createServer, STATUS_CODES, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { Server as NetServer, type Socket } from 'node:net';
import { ErrorCode, SemanticError } from '../../shared/errors.js';
import { BodyBudget, HttpExchange, type HttpServerOptions } from './http-exchange.js';
import { houseErrorBody } from './error-body.js';

export { HttpExchange } from './http-exchange.js';
export type { HttpServerOptions, ResponseHeaders } from './http-exchange.js';

export type ExchangeHandler = (exchange: HttpExchange) => void;

export interface HttpServer {
  /** Every request goes to `handler` (the router matches paths). */
  handle(handler: ExchangeHandler): void;
  /** Resolves with the bound port (the real one when `port` is 0). */
  listen(host: string, port: number): Promise<number>;
  /** Serves a connection that another process accepted (the supervisor's listener). */
  adopt(socket: Socket): void;
  /** Stops accepting connections; open connections keep being served. */
  closeListener(): void;
  /** Stops listening and closes every connection at once (in-flight responses see an abort). Idempotent. */
  close(): void;
}

/**
 * Default time limits on what a client sends (`--headers-timeout`, `--request-timeout`); none applies
 * to a response being written, however long a generation takes. 10 s for headers is uWS's old idle
 * limit; 60 s for a whole request is ample for the 4 MiB default body limit on a slow link.
 */
const HEADERS_TIMEOUT_MS = 10_000;
const REQUEST_TIMEOUT_MS = 60_000;
/** Idle keep-alive connections close after this; clients (undici: 4 s) reuse them sooner. */
export const KEEP_ALIVE_TIMEOUT_MS = 10_000;
/**
 * Request bodies being received at once, all connections together (http-exchange.ts `BodyBudget`):
 * 16 of the largest allowed, at least 64 MiB. Measured: each body byte costs about 4 bytes of heap
 * while it is decoded, parsed and validated (16 concurrent 4 MiB bodies raised RSS by 240 MB), and V8
 * keeps the heap it grew to, so this bounds the process's high-water mark. Agents' real bodies (a
 * 20K-token coding prompt is about 100 KB) stay far below it.
 */
export function bodyBudgetBytes(maxBodyBytes: number): number {
  return Math.max(64 * 1024 * 1024, 16 * maxBodyBytes);
}

/** Headers beyond this many bytes get 431. Node's default (16 KiB) is tight for long API keys plus tracing headers. */
export const MAX_HEADER_BYTES = 32 * 1024;

interface ProtocolFailure {
  status: number;
  error: SemanticError;
}

/** What a parse or timeout error from llhttp means for the client, or undefined when there is no one to answer. */
export function protocolFailureOf(error: Error & { code?: string; reason?: string }, timeouts: { headersMs: number; requestMs: number }): ProtocolFailure | undefined {
  switch (error.code) {
    case 'ECONNRESET':
    case 'EPIPE':
      return undefined;
    case 'HPE_HEADER_OVERFLOW':
      return { status: 431, error: new SemanticError(ErrorCode.HeadersTooLarge, `The request headers exceed ${MAX_HEADER_BYTES} bytes.`) };
    case 'HPE_INVALID_METHOD':
      // RFC 9110 §9.1: a method the server does not know is 501, not a malformed request.
      return { status: 501, error: new SemanticError(ErrorCode.MethodNotImplemented, 'The request method is not one this server knows; the API uses GET, POST and DELETE.') };
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return {
        status: 408,
        error: new SemanticError(
          ErrorCode.RequestTimeout,
          `The request was not received in time (headers within ${timeouts.headersMs / 1000} s, the whole request within ${timeouts.requestMs / 1000} s).`,
        ),
      };
    default: {
      const reason = error.reason ?? error.message;
      return { status: 400, error: new SemanticError(ErrorCode.MalformedHttp, `The request is not valid HTTP/1.1: ${reason}.`) };
    }
  }
}

function rawResponse(status: number, body: string): string {
  const head = [`HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}`, 'Content-Type: application/json', `Content-Length: ${Buffer.byteLength(body)}`, 'Connection: close'];
  return `${head.join('\r\n')}\r\n\r\n${body}`;
}

/**
 * Answers a request llhttp could not parse. A response still being written for an earlier request on
 * the same connection finishes first: the error then follows it, in order, as HTTP/1.1 requires.
 */
function answerProtocolError(error: Error & { code?: string }, socket: Socket, current: HttpExchange | undefined, options: HttpServerOptions): void {
  const failure = protocolFailureOf(error, timeoutsOf(options));
  if (failure === undefined || !socket.writable) return void socket.destroy();
  // The request whose body went wrong is answered by its route, in its API's shape.
  if (current?.failBody(failure.error) === true) return;
  const payload = failure.error.toPayload();
  const body = options.protocolErrorBody?.(payload) ?? JSON.stringify(houseErrorBody(payload));
  const answer = (): void => {
    if (socket.writable) socket.end(rawResponse(failure.status, body));
    socket.destroySoon();
  };
  const pending = (socket as Socket & { _httpMessage?: ServerResponse | null })._httpMessage;
  if (pending !== undefined && pending !== null && !pending.writableFinished) pending.once('finish', answer).once('close', answer);
  else answer();
}

function timeoutsOf(options: HttpServerOptions): { headersMs: number; requestMs: number } {
  const headersMs = options.headersTimeoutMs ?? HEADERS_TIMEOUT_MS;
  return { headersMs, requestMs: Math.max(headersMs, options.requestTimeoutMs ?? REQUEST_TIMEOUT_MS) };
}

export function createHttpServer(options: HttpServerOptions): HttpServer {
  let handler: ExchangeHandler = () => undefined;
  let closed = false;
  let trackingStarted = false;
  const timeouts = timeoutsOf(options);
  /** The latest request on each connection: a protocol error may belong to its body. */
  const latest = new WeakMap<Socket, HttpExchange>();
  const budget = new BodyBudget(options.bodyBudgetBytes ?? bodyBudgetBytes(options.maxBodyBytes));
  const server: Server = createServer({
    maxHeaderSize: MAX_HEADER_BYTES,
    headersTimeout: timeouts.headersMs,
    requestTimeout: timeouts.requestMs,
    keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS,
    // How often the header and request timeouts are checked; Node's default (30 s) would triple them.
    connectionsCheckingInterval: Math.min(1_000, timeouts.headersMs / 2),
    noDelay: true,
  });
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    let exchange: HttpExchange | undefined;
    try {
      exchange = new HttpExchange(req, res, options, budget);
      latest.set(req.socket, exchange);
      handler(exchange);
    } catch (error) {
      options.onInternalError(error);
      exchange?.respond(500, { 'Content-Type': 'text/plain' }, 'internal error', true);
      if (exchange === undefined && !res.headersSent) res.writeHead(500, { Connection: 'close' }).end();
    }
  });
  server.on('clientError', (error: Error & { code?: string }, socket: Socket) => answerProtocolError(error, socket, latest.get(socket), options));
  return {
    handle(next) {
      handler = next;
    },
    listen(host, port) {
      return new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen({ host, port }, () => {
          server.off('error', reject);
          const address = server.address();
          resolve(typeof address === 'object' && address !== null ? address.port : port);
        });
      });
    },
    adopt(socket) {
      if (closed) return void socket.destroy();
      // Node starts tracking connections (the header and request timeouts, closeAllConnections) on
      // 'listening'. A supervised worker never listens, so it says so once itself, or its connections
      // would have no time limits and could not be closed at the end of a drain.
      if (!server.listening && !trackingStarted) {
        trackingStarted = true;
        server.emit('listening');
      }
      server.emit('connection', socket);
    },
    closeListener() {
      // net's close, not http's: http's also drops idle keep-alive connections, and a client that
      // reuses one at that moment sees a reset instead of the drain's answer.
      if (server.listening) NetServer.prototype.close.call(server);
    },
    close() {
      if (closed) return;
      closed = true;
      if (server.listening) server.close();
      server.closeAllConnections();
    },
  };
}
