/**
 * What observability costs a user (issue 16's benchmark): decode throughput and time to first token
 * of `semantic serve` with everything on — traces exported over OTLP/HTTP to a loopback receiver for
 * every request, `/metrics` scraped every second — against the same server with tracing off and no
 * scrapes. One run, rounds alternating which server goes first, so a noisy machine shifts both
 * sides alike; the figure is the ratio of medians. Each round sends `--streams` concurrent streaming
 * chat completions of `--tokens` tokens (greedy), new agents every round so every request computes
 * its prompt. Decode rate: the engine's sampled tokens (`/debug/engine`) over the round's wall time
 * between the last first token and the first end, as bench/concurrency.ts measures it.
 *
 *   npm run build && node dist/bench/observability-cost.js --shape qwen2.5-0.5b --rounds 12 --streams 4 --tokens 64 [--control]
 *
 * `--control` runs both sides plain (an A/A run): how far apart two identical servers come out is the
 * bench's own resolution.
 */
import { createServer, type Server } from 'node:http';
import { type AddressInfo } from 'node:net';
import { cpus } from 'node:os';
import { parseArgs } from 'node:util';
import { ensureModel, type ModelShape } from '../shared/gguf/make-model.js';
import { startServer, type RunningServer } from '../test/helpers/server.js';
import { readSseData } from '../test/helpers/sse.js';
import { median } from './stats.js';

const { values } = parseArgs({
  options: {
    shape: { type: 'string', default: 'qwen2.5-0.5b' },
    model: { type: 'string' },
    rounds: { type: 'string', default: '6' },
    streams: { type: 'string', default: '4' },
    tokens: { type: 'string', default: '64' },
    threads: { type: 'string', default: '0' },
    /** An A/A run: both servers plain (no tracing, no scrapes), to see what the bench itself tilts. */
    control: { type: 'boolean', default: false },
  },
});
const rounds = Number(values.rounds);
const streams = Number(values.streams);
const maxTokens = Number(values.tokens);
const model = values.model ?? (await ensureModel(values.shape as ModelShape));

/** An OTLP/HTTP trace receiver that accepts and counts every export, as a collector would. */
async function traceSink(): Promise<{ server: Server; url: string; exports: () => number }> {
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

function serve(env: NodeJS.ProcessEnv): Promise<RunningServer> {
  const args = ['serve', '--port', '0', '--model', model, '--model-id', 'bench', '--threads', values.threads ?? '0'];
  return startServer([...args, '--max-sequences', String(streams), '--context-size', String(streams * (maxTokens + 96))], 'ready', env);
}

interface Round {
  ttftMs: number[];
  decodePerSecond: number;
}

async function sampled(server: RunningServer): Promise<{ tokens: number; at: number }> {
  const stats = (await (await fetch(`${server.url}/debug/engine`)).json()) as { sampledTokens: number };
  return { tokens: stats.sampledTokens, at: performance.now() };
}

/** One streaming request; resolves its time to first token, calling `started` then and `ended` at its end. */
async function stream(server: RunningServer, agent: string, started: () => void, ended: () => void): Promise<number> {
  const sent = performance.now();
  let ttft = NaN;
  const response = await fetch(`${server.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-agent-id': agent },
    body: JSON.stringify({ model: 'bench', messages: [{ role: 'user', content: `${agent}: report your status.` }], max_tokens: maxTokens, temperature: 0, stream: true }),
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

async function round(server: RunningServer, label: string): Promise<Round> {
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
    Array.from({ length: streams }, (_, i) =>
      stream(
        server,
        `${label}-${i}`,
        () => ++startedCount === streams && onAllStarted(),
        () => onFirstEnded(),
      ),
    ),
  );
  return { ttftMs, decodePerSecond: await counting };
}

const sink = await traceSink();
const plainEnv = { OTEL_TRACES_EXPORTER: 'none', OTEL_EXPORTER_OTLP_ENDPOINT: '' };
const observedEnv = values.control === true ? plainEnv : { OTEL_EXPORTER_OTLP_ENDPOINT: sink.url, OTEL_BSP_SCHEDULE_DELAY: '1000', OTEL_SERVICE_NAME: 'semantic-bench' };
// Two servers a side, started plain, observed, observed, plain: an A/A run showed the server started
// second coming out faster (TTFT 0.77×), so each side gets one early and one late start.
const servers: { side: 'plain' | 'observed'; server: RunningServer }[] = [];
for (const side of ['plain', 'observed', 'observed', 'plain'] as const) servers.push({ side, server: await serve(side === 'plain' ? plainEnv : observedEnv) });
const scrapeAll = (): void => {
  if (values.control !== true) for (const { side, server } of servers) if (side === 'observed') void fetch(`${server.url}/metrics`).then((r) => r.text());
};
const scraper = setInterval(scrapeAll, 1000);
const results = { plain: [] as Round[], observed: [] as Round[] };
try {
  for (const [i, { server }] of servers.entries()) await round(server, `warm-${i}`);
  for (let r = 0; r < rounds; r++) {
    // Each round visits the four in a rotated order, so no server always follows the same one.
    for (let k = 0; k < servers.length; k++) {
      const { side, server } = servers[(r + k) % servers.length]!;
      results[side].push(await round(server, `${side}-${r}-${k}`));
      // The last round's write-behind (250 ms after its turns end) must not land in the next one's prefill.
      await new Promise((resolve) => setTimeout(resolve, 600));
    }
  }
} finally {
  clearInterval(scraper);
  await Promise.all(servers.map(({ server }) => server.stop()));
  sink.server.close();
}

const decode = (side: Round[]): number => median(side.map((x) => x.decodePerSecond));
const ttft = (side: Round[]): number => median(side.flatMap((x) => x.ttftMs));
console.log(
  `model ${model}; ${rounds} rounds × ${streams} streams × ${maxTokens} tokens; ${cpus().length} CPUs (${cpus()[0]?.model ?? '?'}); trace exports received: ${sink.exports()}`,
);
console.log('| | decode tokens/s (median of rounds) | TTFT ms (median of requests) |');
console.log('|---|---|---|');
console.log(`| off (no tracing, no scrapes) | ${decode(results.plain).toFixed(1)} | ${ttft(results.plain).toFixed(1)} |`);
console.log(`| on (OTLP traces, /metrics every 1 s) | ${decode(results.observed).toFixed(1)} | ${ttft(results.observed).toFixed(1)} |`);
console.log(`| on / off | ${(decode(results.observed) / decode(results.plain)).toFixed(3)} | ${(ttft(results.observed) / ttft(results.plain)).toFixed(3)} |`);
