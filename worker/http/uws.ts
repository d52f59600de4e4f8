/**
 * The one adapter around uWebSockets.js. Nothing else imports `uwebsockets`, so the official uWS.js
 * (or another build) can replace it here alone.
 *
 * uWS rules this file absorbs so that callers cannot break them:
 * - `onAborted` must be attached inside the request callback before any async work, and the native
 *   response must never be touched after it fired or after the response ended (uWS throws).
 * - The request object is stack-allocated: method, path, query and headers are copied at once.
 * - The body arrives through `onData` with chunks that are neutered on return, so they are copied; uWS
 *   has no body size limit, so one is enforced here.
 * - Writes made outside a uWS callback must be corked; status, headers and body go out in one cork.
 * - An exception thrown inside a uWS callback becomes an uncaught exception, so every callback is
 *   wrapped and reports to `onInternalError` instead.
 * - uWS callbacks lose AsyncLocalStorage context: request-scoped data travels on the exchange.
 */
import { STATUS_CODES } from 'node:http';
import { performance } from 'node:perf_hooks';
import uWS from 'uwebsockets';
import { ErrorCode, SemanticError } from '../../shared/errors.js';

type NativeResponse = uWS.HttpResponse;
type NativeRequest = uWS.HttpRequest;

export type ResponseHeaders = Readonly<Record<string, string>>;

export interface HttpServerOptions {
  /** Request bodies larger than this are refused (413) without being read to the end. */
  maxBodyBytes: number;
  /** Called for exceptions that escaped a handler or listener: always a bug. */
  onInternalError: (error: unknown) => void;
}

export type ExchangeHandler = (exchange: HttpExchange) => void;

export interface HttpServer {
  /** Registers `handler` for every method on paths matching a uWS pattern (e.g. `/*`). */
  route(pattern: string, handler: ExchangeHandler): void;
  /** Resolves with the bound port (the real one when `port` is 0). */
  listen(host: string, port: number): Promise<number>;
  /** Stops accepting connections; open connections keep being served. */
  closeListener(): void;
  /** Stops listening and closes every connection at once (in-flight responses see an abort). Idempotent. */
  close(): void;
}

type ExchangeState = 'open' | 'streaming' | 'ended' | 'aborted';

/**
 * One request and its response. Valid from the request callback until the response ends or the
 * client goes away; every method is a no-op afterwards, so callers never need to guard.
 */
export class HttpExchange {
  readonly method: string;
  readonly path: string;
  readonly query: string;
  /** Lower-case header names; the last value wins for repeated headers. */
  readonly headers: ReadonlyMap<string, string>;
  /** `performance.now()` when the request arrived. */
  readonly receivedAt = performance.now();
  /** Headers added to every response, computed when it is written (e.g. request id, response time). */
  baseHeaders: () => ResponseHeaders = () => ({});
  /** Close the connection once this response ends (`Connection: close`): set while the server drains. */
  closeConnectionAfter = false;

  private state: ExchangeState = 'open';
  private status: number | undefined;
  private readonly closeListeners: ((aborted: boolean) => void)[] = [];
  private writableListener: (() => void) | undefined;
  private readonly bodyPromise: Promise<Buffer>;
  private bodyComplete: boolean;

  constructor(
    private readonly res: NativeResponse,
    req: NativeRequest,
    private readonly options: HttpServerOptions,
  ) {
    this.method = req.getMethod().toUpperCase();
    this.path = req.getUrl();
    // This build returns undefined (not '') when the URL has no query.
    this.query = req.getQuery() ?? '';
    const headers = new Map<string, string>();
    req.forEach((key, value) => headers.set(key, value));
    this.headers = headers;
    res.onAborted(() => this.guard(() => this.onAborted()));
    this.bodyComplete = !this.expectsBody();
    this.bodyPromise = this.readBody();
    // A handler that never asks for the body must not leave an unhandled rejection behind.
    this.bodyPromise.catch(() => undefined);
  }

  get aborted(): boolean {
    return this.state === 'aborted';
  }

  /** The response ended or the client went away. */
  get finished(): boolean {
    return this.state === 'ended' || this.state === 'aborted';
  }

  /** Headers were sent as the start of a streamed response. */
  get streaming(): boolean {
    return this.state === 'streaming';
  }

  /** The status written, if any. */
  get statusCode(): number | undefined {
    return this.status;
  }

  /** Resolves with the whole body; rejects with ERR_BODY_TOO_LARGE over the limit or ERR_ABORTED. */
  body(): Promise<Buffer> {
    return this.bodyPromise;
  }

  /** `listener(aborted)` runs once: when the response ended (false) or the client went away (true). */
  onClose(listener: (aborted: boolean) => void): void {
    if (this.finished) {
      this.guard(() => listener(this.aborted));
      return;
    }
    this.closeListeners.push(listener);
  }

  /** Status, headers and body in one cork. Closes the connection if the body was not read to the end. */
  respond(status: number, headers: ResponseHeaders, body: string | Uint8Array, closeConnection = false): void {
    if (this.state !== 'open') return;
    const close = closeConnection || this.closeConnectionAfter || !this.bodyComplete;
    this.res.cork(() => {
      this.writeHead(status, headers);
      this.res.end(body, close); // uWS writes `Connection: close` itself
    });
    this.finish();
  }

  /** Sends status and headers now (chunked encoding); the body follows with `write`. */
  beginStream(status: number, headers: ResponseHeaders): void {
    if (this.state !== 'open') return;
    this.res.cork(() => {
      this.writeHead(status, this.closeConnectionAfter ? { ...headers, Connection: 'close' } : headers);
      // An empty write flushes the head and switches the response to chunked encoding.
      this.res.write('');
    });
    this.state = 'streaming';
  }

  /**
   * Writes part of a streamed body. uWS always takes the bytes; false means they are buffered in uWS
   * (backpressure): hold further writes until the `onWritable` listener runs.
   */
  write(chunk: string | Uint8Array): boolean {
    if (this.state !== 'streaming') return false;
    let drained = false;
    this.res.cork(() => {
      drained = this.res.write(chunk);
    });
    return drained;
  }

  /** Runs `listener` each time the socket drained after a write returned false. */
  onWritable(listener: () => void): void {
    if (this.writableListener === undefined && !this.finished) {
      this.res.onWritable(() => {
        this.guard(() => this.writableListener?.());
        // We never hand uWS a partial chunk, so there is nothing for it to retry: always success.
        return true;
      });
    }
    this.writableListener = listener;
  }

  endStream(): void {
    if (this.state !== 'streaming') return;
    // Not end(…, true) even when closing: uWS would drop the chunked terminator. The client closes
    // the connection after this response, as the `Connection: close` sent with the head tells it to.
    this.res.cork(() => this.res.end());
    this.finish();
  }

  /** Closes the connection at once (e.g. a client too slow to read its stream); close listeners see an abort. */
  destroy(): void {
    if (this.finished) return;
    this.res.close();
  }

  private writeHead(status: number, headers: ResponseHeaders): void {
    this.status = status;
    this.res.writeStatus(`${status} ${STATUS_CODES[status] ?? 'Unknown'}`);
    for (const [name, value] of Object.entries({ ...this.baseHeaders(), ...headers })) this.res.writeHeader(name, value);
  }

  private expectsBody(): boolean {
    const length = this.headers.get('content-length');
    return (length !== undefined && length !== '' && length !== '0') || this.headers.has('transfer-encoding');
  }

  private readBody(): Promise<Buffer> {
    const declared = Number(this.headers.get('content-length') ?? '0');
    if (Number.isFinite(declared) && declared > this.options.maxBodyBytes) {
      // Attach a reader anyway so uWS has a handler for the bytes already on their way.
      this.res.onData(() => undefined);
      return Promise.reject(this.tooLarge());
    }
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      let received = 0;
      let settled = false;
      this.res.onData((chunk, isLast) =>
        this.guard(() => {
          if (settled) return;
          received += chunk.byteLength;
          if (received > this.options.maxBodyBytes) {
            settled = true;
            return reject(this.tooLarge());
          }
          chunks.push(Buffer.from(chunk.slice(0)));
          if (!isLast) return;
          settled = true;
          this.bodyComplete = true;
          resolve(Buffer.concat(chunks, received));
        }),
      );
      this.closeListeners.push((aborted) => {
        if (!aborted || settled) return;
        settled = true;
        reject(new SemanticError(ErrorCode.Aborted, 'the client closed the connection'));
      });
    });
  }

  private tooLarge(): SemanticError {
    return new SemanticError(ErrorCode.BodyTooLarge, `The request body exceeds ${this.options.maxBodyBytes} bytes.`);
  }

  private onAborted(): void {
    if (this.finished) return;
    this.state = 'aborted';
    this.notifyClose(true);
  }

  private finish(): void {
    this.state = 'ended';
    this.notifyClose(false);
  }

  private notifyClose(aborted: boolean): void {
    const listeners = this.closeListeners.splice(0);
    for (const listener of listeners) this.guard(() => listener(aborted));
  }

  private guard(action: () => void): void {
    try {
      action();
    } catch (error) {
      this.options.onInternalError(error);
    }
  }
}

/** Last resort when a handler threw before the router could answer in its own error shape. */
function answerCrash(exchange: HttpExchange): void {
  exchange.respond(500, { 'Content-Type': 'text/plain' }, 'internal error', true);
  exchange.destroy();
}

export function createHttpServer(options: HttpServerOptions): HttpServer {
  const app = uWS.App();
  let listenSocket: uWS.us_listen_socket | undefined;
  let closed = false;
  const closeListener = (): void => {
    if (listenSocket === undefined) return;
    uWS.us_listen_socket_close(listenSocket);
    listenSocket = undefined;
  };
  return {
    route(pattern, handler) {
      app.any(pattern, (res, req) => {
        let exchange: HttpExchange | undefined;
        try {
          exchange = new HttpExchange(res, req, options);
          handler(exchange);
        } catch (error) {
          options.onInternalError(error);
          if (exchange !== undefined) answerCrash(exchange);
          else res.cork(() => res.writeStatus('500 Internal Server Error').end('', true));
        }
      });
    },
    listen(host, port) {
      return new Promise((resolve, reject) => {
        // uWS calls back synchronously; on Linux it binds with SO_REUSEPORT, so worker processes share a port.
        app.listen(host, port, (socket) => {
          if (socket === false) return reject(new Error(`cannot listen on ${host}:${port}`));
          listenSocket = socket;
          resolve(uWS.us_socket_local_port(socket));
        });
      });
    },
    closeListener,
    close() {
      if (closed) return;
      closed = true;
      closeListener();
      app.close();
    },
  };
}
