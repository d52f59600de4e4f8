/**
 * Server-sent events over one HttpExchange. Token streams are produced faster than a slow client may
 * read them, so events wait in a bounded queue while the socket is backpressured; a client that falls
 * further behind than the bound is disconnected (which aborts its generation) rather than letting the
 * queue grow without limit.
 */
import type { HttpExchange, ResponseHeaders } from './http-exchange.js';

export const sseHeaders: ResponseHeaders = {
  'Content-Type': 'text/event-stream',
  'Cache-Control': 'no-cache',
  Connection: 'keep-alive',
  // Tells nginx-style proxies not to buffer the stream.
  'X-Accel-Buffering': 'no',
};

/** Default bound on bytes waiting for a backpressured client. */
export const defaultMaxQueuedBytes = 1024 * 1024;

/** One event: an optional `event:` line, one `data:` line per line of `data`, a blank line. */
export function formatSseEvent(data: string, event?: string): string {
  const head = event === undefined ? '' : `event: ${event}\n`;
  return `${head}${data
    .split(/\r\n|\r|\n/)
    .map((line) => `data: ${line}\n`)
    .join('')}\n`;
}

/** The part of an HttpExchange a stream uses (a seam for testing backpressure without a socket). */
export type StreamTarget = Pick<HttpExchange, 'aborted' | 'finished' | 'beginStream' | 'write' | 'onWritable' | 'endStream' | 'destroy'>;

export interface SseStreamOptions {
  /** Extra response headers (the SSE ones are always sent). */
  headers?: ResponseHeaders;
  maxQueuedBytes?: number;
}

export class SseStream {
  private readonly queue: string[] = [];
  private queuedBytes = 0;
  private opened = false;
  private backpressured = false;
  private ending = false;
  private readonly maxQueuedBytes: number;

  constructor(
    private readonly exchange: StreamTarget,
    private readonly options: SseStreamOptions = {},
  ) {
    this.maxQueuedBytes = options.maxQueuedBytes ?? defaultMaxQueuedBytes;
  }

  /** The 200 and the headers were sent. */
  get isOpen(): boolean {
    return this.opened;
  }

  /** The client went away (or was dropped for reading too slowly): further sends do nothing. */
  get clientGone(): boolean {
    return this.exchange.aborted;
  }

  /** Bytes waiting for the socket to drain. */
  get backlog(): number {
    return this.queuedBytes;
  }

  open(): void {
    if (this.opened) return;
    this.opened = true;
    this.exchange.beginStream(200, { ...sseHeaders, ...this.options.headers });
    this.exchange.onWritable(() => this.flush());
  }

  /** Sends `data` as is (e.g. `[DONE]`). */
  send(data: string, event?: string): void {
    this.enqueue(formatSseEvent(data, event));
  }

  sendJson(value: unknown, event?: string): void {
    this.send(JSON.stringify(value), event);
  }

  /** A comment line: keeps idle proxies from closing the connection, ignored by clients. */
  comment(text: string): void {
    this.enqueue(`: ${text}\n\n`);
  }

  /** Ends the response once every queued event was handed to the socket. */
  end(): void {
    this.open();
    this.ending = true;
    if (this.queue.length === 0) this.exchange.endStream();
  }

  private enqueue(text: string): void {
    this.open();
    if (this.exchange.finished || this.ending) return;
    if (this.backpressured) return this.hold(text);
    // The socket takes the bytes either way; false means Node buffered them and later events must wait here.
    if (!this.exchange.write(text)) this.backpressured = true;
  }

  private hold(text: string): void {
    this.queue.push(text);
    this.queuedBytes += Buffer.byteLength(text);
    if (this.queuedBytes > this.maxQueuedBytes) this.exchange.destroy();
  }

  /** The socket drained: hand queued events over until it pushes back again. */
  private flush(): void {
    this.backpressured = false;
    let text: string | undefined;
    while (!this.backpressured && (text = this.queue.shift()) !== undefined) {
      this.queuedBytes -= Buffer.byteLength(text);
      if (!this.exchange.write(text)) this.backpressured = true;
    }
    if (this.queue.length === 0 && this.ending) this.exchange.endStream();
  }
}
