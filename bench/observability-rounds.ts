/**
 * The pieces of issue 16's observability benchmark (bench/observability-cost.ts): a loopback OTLP
 * receiver, and a round of concurrent streaming requests measured for time to first token and for the
 * engine's decode rate.
 */
import { createServer, type Server } from 'node:http';
import { type AddressInfo } from 'node:net';
import { type RunningServer } from '../test/helpers/server.js';
import { readSseData } from '../test/helpers/sse.js';

/** An OTLP/HTTP trace receiver that accepts and counts every export, as a collector would. */
export async function traceSink(): Promise<{ server: Server; url: string; exports: () => number }> {
  let exports = 0;
  const server = createServer((request, response) => {
    request.resume();
    request.on('end', () => {
      exports++;
      response.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, exports: () => exports };
}

export interface Round {
  ttftMs: number[];
  decodePerSecond: number;
}

export interface RoundShape {
  streams: number;
  maxTokens: number;
  /** Extra headers for each request (a `traceparent`, say), made anew per request. */
  headers?: () => Record<string, string>;
}

async function sampled(server: RunningServer): Promise<{ tokens: number; at: number }> {
  const stats = (await (await fetch(`${server.url}/debug/engine`)).json()) as { sampledTokens: number };
  return { tokens: stats.sampledTokens, at: performance.now() };
}

/** One streaming request; resolves its time to first token, calling `started` then and `ended` at its end. */
async function stream(server: RunningServer, agent: string, shape: RoundShape, started: () => void, ended: () => void): Promise<number> {
  const sent = performance.now();
  let ttft = NaN;
  const response = await fetch(`${server.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-agent-id': agent, ...shape.headers?.() },
    body: JSON.stringify({
      model: 'bench',
      messages: [{ role: 'user', content: `${agent}: report your status.` }],
      max_tokens: shape.maxTokens,
      temperature: 0,
      stream: true,
    }),
  });
  await readSseData(response, (data) => {
    if (Number.isNaN(ttft) && data.includes('"content":"') && !data.includes('"content":""')) {
      ttft = performance.now() - sent;
      started();
    }
  });
  ended();
  return ttft;
}

/**
 * `shape.streams` concurrent streams for new agents (so each computes its prompt). Decode rate: the
 * engine's sampled tokens (`/debug/engine`) over the wall time between the last first token and the
 * first end, when every stream decodes, as bench/concurrency.ts measures it.
 */
export async function round(server: RunningServer, label: string, shape: RoundShape): Promise<Round> {
  let startedCount = 0;
  let onAllStarted!: () => void;
  let onFirstEnded!: () => void;
  const allStarted = new Promise<void>((resolve) => (onAllStarted = resolve));
  const firstEnded = new Promise<void>((resolve) => (onFirstEnded = resolve));
  const counting = allStarted.then(async () => {
    const from = await sampled(server);
    await firstEnded;
    const to = await sampled(server);
    return ((to.tokens - from.tokens) * 1000) / (to.at - from.at);
  });
  const ttftMs = await Promise.all(
    Array.from({ length: shape.streams }, (_, i) =>
      stream(
        server,
        `${label}-${i}`,
        shape,
        () => ++startedCount === shape.streams && onAllStarted(),
        () => onFirstEnded(),
      ),
    ),
  );
  return { ttftMs, decodePerSecond: await counting };
}

/** The last round's write-behind (250 ms after its turns end) must not land in the next one's prefill. */
export const settle = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 600));
