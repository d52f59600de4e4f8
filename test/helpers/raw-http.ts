/**
 * HTTP/1.1 on a raw TCP socket, for tests of what a real network does to requests: writes split
 * across segments, pipelined requests, malformed bytes. Responses are parsed here (Content-Length and
 * chunked bodies) so a test sees exactly what came back on the wire, in order.
 */
import { connect, type Socket } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';

export interface RawResponse {
  status: number;
  /** Lower-case names. */
  headers: Record<string, string>;
  body: string;
}

export interface RawExchange {
  responses: RawResponse[];
  /** The server closed the connection (FIN or reset) before the test gave up waiting. */
  closed: boolean;
  /** A reset (ECONNRESET) rather than a clean close. */
  reset: boolean;
}

/** Splits a byte stream into complete responses; whatever is left is an incomplete one. */
export function parseResponses(bytes: Buffer): RawResponse[] {
  const responses: RawResponse[] = [];
  let at = 0;
  for (;;) {
    const headEnd = bytes.indexOf('\r\n\r\n', at);
    if (headEnd < 0) return responses;
    const [statusLine = '', ...lines] = bytes.subarray(at, headEnd).toString('latin1').split('\r\n');
    const headers: Record<string, string> = {};
    for (const line of lines) {
      const colon = line.indexOf(':');
      headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
    }
    const body = readBody(bytes, headEnd + 4, headers);
    if (body === undefined) return responses;
    responses.push({ status: Number(statusLine.split(' ')[1]), headers, body: body.text });
    at = body.end;
  }
}

function readBody(bytes: Buffer, start: number, headers: Record<string, string>): { text: string; end: number } | undefined {
  if (headers['transfer-encoding'] === 'chunked') return readChunked(bytes, start);
  const length = Number(headers['content-length'] ?? '0');
  if (bytes.length < start + length) return undefined;
  return { text: bytes.subarray(start, start + length).toString('utf8'), end: start + length };
}

function readChunked(bytes: Buffer, start: number): { text: string; end: number } | undefined {
  const parts: Buffer[] = [];
  let at = start;
  for (;;) {
    const lineEnd = bytes.indexOf('\r\n', at);
    if (lineEnd < 0) return undefined;
    const size = parseInt(bytes.subarray(at, lineEnd).toString('latin1'), 16);
    if (bytes.length < lineEnd + 2 + size + 2) return undefined;
    if (size === 0) return { text: Buffer.concat(parts).toString('utf8'), end: lineEnd + 4 };
    parts.push(bytes.subarray(lineEnd + 2, lineEnd + 2 + size));
    at = lineEnd + 2 + size + 2;
  }
}

export interface SendOptions {
  /** Pause between segments, so that each arrives in its own TCP segment and read. */
  gapMs?: number;
  /** Stop waiting once this many complete responses came back (the connection may stay open). */
  responses?: number;
}

/**
 * Writes `segments` one by one on a new connection, then waits until the server closed it or sent
 * `responses` complete answers. A test's own timeout bounds the wait.
 */
export async function sendRaw(port: number, segments: (string | Buffer)[], options: SendOptions = {}): Promise<RawExchange> {
  const socket = connect({ host: '127.0.0.1', port, noDelay: true });
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  const result = collect(socket, options.responses);
  for (const [i, segment] of segments.entries()) {
    if (i > 0 && options.gapMs !== undefined) await delay(options.gapMs);
    if (socket.destroyed) break;
    socket.write(segment);
  }
  return result;
}

function collect(socket: Socket, wanted: number | undefined): Promise<RawExchange> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let reset = false;
    const finish = (closed: boolean): void => {
      socket.removeAllListeners('data');
      if (!closed) socket.destroy();
      resolve({ responses: parseResponses(Buffer.concat(chunks)), closed, reset });
    };
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      if (wanted !== undefined && parseResponses(Buffer.concat(chunks)).length >= wanted) finish(false);
    });
    socket.on('error', (error: NodeJS.ErrnoException) => (reset = error.code === 'ECONNRESET'));
    socket.once('close', () => finish(true));
  });
}

/** A request's bytes, with Host and Content-Length filled in. */
export function rawRequest(method: string, path: string, body = '', headers: Record<string, string> = {}): string {
  const lines = [`${method} ${path} HTTP/1.1`, 'Host: 127.0.0.1', ...Object.entries(headers).map(([name, value]) => `${name}: ${value}`)];
  if (body !== '' || method === 'POST') lines.push('Content-Type: application/json', `Content-Length: ${Buffer.byteLength(body)}`);
  return `${lines.join('\r\n')}\r\n\r\n${body}`;
}
