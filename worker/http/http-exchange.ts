/**
 * One request and its response over `node:http`, with the lifecycle the router relies on: close
 * listeners run exactly once (response ended, or client gone), and every method is a no-op after.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import { ErrorCode, SemanticError, type ErrorPayload } from '../../shared/errors.js';

export type ResponseHeaders = Readonly<Record<string, string>>;

export interface HttpServerOptions {
  /** Request bodies larger than this are refused (413) without being kept. */
  maxBodyBytes: number;
  /** Request body bytes held at once, all connections together; default: http-server.ts `bodyBudgetBytes`. */
  bodyBudgetBytes?: number;
  /** Time a client has to send its headers, and its whole request (http-server.ts has the defaults). */
  headersTimeoutMs?: number;
  requestTimeoutMs?: number;
  /** Called for exceptions that escaped a handler or listener: always a bug. */
  onInternalError: (error: unknown) => void;
  /** The JSON body for a request that never reached the router (bad framing, timeouts); default: the house shape. */
  protocolErrorBody?: (error: ErrorPayload) => string;
}

type ExchangeState = 'open' | 'streaming' | 'ended' | 'aborted';

/**
 * The bytes of request bodies being received, all connections together. Each body is under
 * `maxBodyBytes`, but a thousand slow clients each sending one would hold gigabytes: past the budget a
 * new chunk gets 429, as a full queue would. Released when the body is complete or abandoned.
 */
export class BodyBudget {
  private held = 0;

  constructor(readonly limitBytes: number) {}

  get heldBytes(): number {
    return this.held;
  }

  take(bytes: number): boolean {
    if (this.held + bytes > this.limitBytes) return false;
    this.held += bytes;
    return true;
  }

  give(bytes: number): void {
    this.held -= bytes;
  }
}

/**
 * After a 413, how long and how many more bytes the rest of the refused body is read and dropped, so
 * the client reads the answer instead of a reset. A client still sending after that is cut off.
 */
const LINGER_MS = 2_000;
const LINGER_BYTES = 64 * 1024 * 1024;

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
  /** The whole request body arrived (or none was sent). */
  private bodyComplete: boolean;
  /** The body can never complete: its bytes were malformed or its time ran out (`failBody`). */
  private bodyBroken = false;
  private rejectBody: ((error: SemanticError) => void) | undefined;

  constructor(
    private readonly req: IncomingMessage,
    private readonly res: ServerResponse,
    private readonly options: HttpServerOptions,
    private readonly budget: BodyBudget,
  ) {
    this.method = (req.method ?? 'GET').toUpperCase();
    const url = req.url ?? '/';
    const queryAt = url.indexOf('?');
    this.path = queryAt < 0 ? url : url.slice(0, queryAt);
    this.query = queryAt < 0 ? '' : url.slice(queryAt + 1);
    this.headers = lastValueHeaders(req.rawHeaders);
    res.once('close', () => this.guard(() => this.onResponseClosed()));
    res.on('drain', () => this.guard(() => this.writableListener?.()));
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

  /** The error code the route answered with (router.ts sendError), for the metrics' 429 reasons. */
  errorCode: string | undefined;

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

  /** Status, headers and body at once. Closes the connection after it when asked or when draining. */
  respond(status: number, headers: ResponseHeaders, body: string | Uint8Array, closeConnection = false): void {
    if (this.state !== 'open') return;
    const close = closeConnection || this.closeConnectionAfter || !this.bodyComplete;
    this.writeHead(status, { ...headers, 'Content-Length': String(Buffer.byteLength(body)), ...(close ? { Connection: 'close' } : {}) });
    if (this.bodyComplete || this.bodyBroken || this.req.destroyed) this.res.end(body);
    else this.lingerThenEnd(body);
    this.finish();
  }

  /**
   * The connection's bytes stopped being valid HTTP, or its time ran out, while this request's body
   * was arriving: the body read fails with `error`, so the route answers it in its own error shape and
   * the connection closes after. False when this request is past its body (the error is another's).
   */
  failBody(error: SemanticError): boolean {
    if (this.bodyComplete || this.finished || this.rejectBody === undefined) return false;
    this.bodyBroken = true;
    this.closeConnectionAfter = true;
    this.rejectBody(error);
    return true;
  }

  /** Sends status and headers now (chunked encoding); the body follows with `write`. */
  beginStream(status: number, headers: ResponseHeaders): void {
    if (this.state !== 'open') return;
    this.writeHead(status, this.closeConnectionAfter ? { ...headers, Connection: 'close' } : headers);
    this.res.flushHeaders();
    this.state = 'streaming';
  }

  /**
   * Writes part of a streamed body. The bytes are always taken; false means they are buffered
   * (backpressure): hold further writes until the `onWritable` listener runs.
   */
  write(chunk: string | Uint8Array): boolean {
    if (this.state !== 'streaming') return false;
    return this.res.write(chunk);
  }

  /** Runs `listener` each time the socket drained after a write returned false. */
  onWritable(listener: () => void): void {
    this.writableListener = listener;
  }

  endStream(): void {
    if (this.state !== 'streaming') return;
    this.res.end();
    this.finish();
  }

  /** Closes the connection at once (e.g. a client too slow to read its stream); close listeners see an abort. */
  destroy(): void {
    if (this.finished) return;
    this.res.destroy();
    this.req.socket.destroy();
  }

  private writeHead(status: number, headers: ResponseHeaders): void {
    this.status = status;
    this.res.writeHead(status, { ...this.baseHeaders(), ...headers });
  }

  /** Writes the whole answer now, ends it once the refused body stopped arriving (or after the linger limits). */
  private lingerThenEnd(body: string | Uint8Array): void {
    this.res.write(body);
    let dropped = 0;
    const end = (): void => {
      clearTimeout(timer);
      this.req.off('data', count);
      this.res.end();
    };
    const count = (chunk: Buffer): void => {
      dropped += chunk.byteLength;
      if (dropped > LINGER_BYTES) end();
    };
    const timer = setTimeout(end, LINGER_MS);
    this.req.on('data', count).once('end', end).once('error', end);
    this.req.resume();
  }

  private expectsBody(): boolean {
    const length = this.req.headers['content-length'];
    return (length !== undefined && length !== '' && length !== '0') || this.req.headers['transfer-encoding'] !== undefined;
  }

  private readBody(): Promise<Buffer> {
    const declared = Number(this.req.headers['content-length'] ?? '0');
    if (Number.isFinite(declared) && declared > this.options.maxBodyBytes) return Promise.reject(this.tooLarge());
    return new Promise((resolve, reject) => {
      // With a declared length the bytes go straight into one buffer: no second copy to join chunks.
      const declaredLength = Number(this.req.headers['content-length']);
      const whole = Number.isInteger(declaredLength) && declaredLength > 0 ? Buffer.allocUnsafe(declaredLength) : undefined;
      const chunks: Buffer[] = [];
      let received = 0;
      let settled = false;
      const settle = (error?: SemanticError): void => {
        if (settled) return;
        settled = true;
        this.req.off('data', onData);
        this.budget.give(received);
        if (error !== undefined) {
          chunks.length = 0;
          return reject(error);
        }
        this.bodyComplete = true;
        resolve(whole === undefined ? Buffer.concat(chunks, received) : whole.subarray(0, received));
      };
      const onData = (chunk: Buffer): void => {
        if (received + chunk.byteLength > this.options.maxBodyBytes) return settle(this.tooLarge());
        if (!this.budget.take(chunk.byteLength)) return settle(this.overBudget());
        if (whole !== undefined) chunk.copy(whole, received);
        else chunks.push(chunk);
        received += chunk.byteLength;
      };
      this.rejectBody = settle;
      this.req.on('data', onData);
      this.req.once('end', () => settle());
      this.req.once('error', () => settle(new SemanticError(ErrorCode.Aborted, 'the client closed the connection')));
      this.closeListeners.push((aborted) => aborted && settle(new SemanticError(ErrorCode.Aborted, 'the client closed the connection')));
    });
  }

  private overBudget(): SemanticError {
    return new SemanticError(ErrorCode.QueueFull, `The server is receiving ${this.budget.limitBytes} bytes of request bodies at once; retry shortly.`, { retryAfter: 1 });
  }

  private tooLarge(): SemanticError {
    return new SemanticError(ErrorCode.BodyTooLarge, `The request body exceeds ${this.options.maxBodyBytes} bytes.`);
  }

  /** 'close' comes once the response is fully handed to the OS, or when the connection died first. */
  private onResponseClosed(): void {
    if (this.finished) return;
    this.state = this.res.writableFinished ? 'ended' : 'aborted';
    this.notifyClose(this.state === 'aborted');
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

/** Lower-cased names, the last value winning for a repeated header, as the router expects. */
function lastValueHeaders(raw: readonly string[]): Map<string, string> {
  const headers = new Map<string, string>();
  for (let i = 0; i + 1 < raw.length; i += 2) headers.set((raw[i] ?? '').toLowerCase(), raw[i + 1] ?? '');
  return headers;
}
