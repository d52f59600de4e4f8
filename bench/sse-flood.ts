/**
 * Streaming at high concurrency, Semantic beside llama-server: 256 clients, each streaming chat
 * completions (SSE, no agent id, a prompt of its own) one after another for a fixed time, on 64
 * sequences/slots, while a prober asks the liveness route every 10 ms. A client refused with a 429
 * waits its Retry-After, as the OpenAI and Anthropic SDKs do. Prints completed streams per second,
 * time to first event and to the end (p50/p99), refusals, failures (any other status, a stream cut
 * before [DONE], a connection error) and the probe's p99.
 *
 * llama-server holds one HTTP thread per open stream, so it runs with as many HTTP threads as there
 * are clients (plus the prober's): with fewer, streams would wait for a thread, not for a slot.
 *
 *   npm run bench:sse -- [--clients 256] [--sequences 64] [--max-tokens 16] [--seconds 10] [--servers semantic,llama-server]
 */
import { parseArgs } from 'node:util';
import { Worker } from 'node:worker_threads';
import { ensureModel } from '../shared/gguf/make-model.js';
import { readSseData } from '../test/helpers/sse.js';
import { settings, startTarget, type Kind, type Target } from './vs-llama-server-targets.js';

const { values } = parseArgs({
  options: {
    clients: { type: 'string', default: '256' },
    sequences: { type: 'string', default: '64' },
    'max-tokens': { type: 'string', default: '16' },
    seconds: { type: 'string', default: '10' },
    servers: { type: 'string', default: 'semantic,llama-server' },
  },
});
const clients = Number(values.clients);
const maxTokens = Number(values['max-tokens']);
const seconds = Number(values.seconds);
Object.assign(settings, { sequences: Number(values.sequences), context: 16384, threads: 2, httpThreads: clients + 16 });

interface Measured {
  streams: number;
  perSecond: number;
  firstP50: number;
  firstP99: number;
  endP50: number;
  endP99: number;
  refused: number;
  failed: number;
  probeP99: number;
  probes: number;
}

const percentile = (sorted: number[], p: number): number => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** One streamed request: its time to first event and to the end, or why it was not served. */
async function streamOnce(url: string, prompt: string): Promise<{ first: number; end: number } | { retryAfter: number } | { failed: string }> {
  const started = performance.now();
  const response = await fetch(`${url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'bench', messages: [{ role: 'user', content: prompt }], max_tokens: maxTokens, temperature: 0, stream: true }),
  });
  if (response.status === 429) {
    await response.arrayBuffer();
    return { retryAfter: Number(response.headers.get('retry-after') ?? 1) };
  }
  if (response.status !== 200) return { failed: `status ${response.status}` };
  let first = NaN;
  const events = await readSseData(response, () => void (Number.isNaN(first) && (first = performance.now() - started)));
  return events.at(-1) === '[DONE]' ? { first, end: performance.now() - started } : { failed: 'cut before [DONE]' };
}

async function client(url: string, id: number, until: number, out: { first: number[]; end: number[]; refused: number; failed: number }): Promise<void> {
  for (let n = 0; performance.now() < until; n++) {
    const result = await streamOnce(url, `Write a line about the sea, client ${id}, request ${n}.`).catch((error: unknown) => ({ failed: String(error) }));
    if ('first' in result) {
      out.first.push(result.first);
      out.end.push(result.end);
    } else if ('retryAfter' in result) {
      out.refused++;
      await sleep(Math.min(result.retryAfter * 1000, Math.max(0, until - performance.now())));
    } else out.failed++;
  }
}

/**
 * The prober runs on a thread of its own: on the clients' event loop, parsing 256 streams, its
 * timings would include this process's own delays rather than the server's.
 */
const prober = `
  const { parentPort, workerData: { url, ms } } = require('node:worker_threads');
  (async () => {
    const times = [];
    const until = performance.now() + ms;
    while (performance.now() < until) {
      const started = performance.now();
      await fetch(url).then((response) => response.arrayBuffer(), () => undefined);
      times.push(performance.now() - started);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    parentPort.postMessage(times);
  })();
`;

function probe(url: string, until: number): Promise<number[]> {
  const worker = new Worker(prober, { eval: true, workerData: { url, ms: until - performance.now() } });
  return new Promise<number[]>((resolve, reject) => {
    worker.once('message', (times: number[]) => resolve(times.sort((a, b) => a - b)));
    worker.once('error', reject);
  }).finally(() => void worker.terminate());
}

async function measure(target: Target): Promise<Measured> {
  const out = { first: [] as number[], end: [] as number[], refused: 0, failed: 0 };
  const until = performance.now() + seconds * 1000;
  const probePath = target.kind === 'semantic' ? '/health/live' : '/health';
  const [probes] = await Promise.all([probe(`${target.url}${probePath}`, until), ...Array.from({ length: clients }, (_, id) => client(target.url, id, until, out))]);
  const [first, end] = [out.first.sort((a, b) => a - b), out.end.sort((a, b) => a - b)];
  return {
    streams: end.length,
    perSecond: end.length / seconds,
    firstP50: percentile(first, 50),
    firstP99: percentile(first, 99),
    endP50: percentile(end, 50),
    endP99: percentile(end, 99),
    refused: out.refused,
    failed: out.failed,
    probeP99: percentile(probes, 99),
    probes: probes.length,
  };
}

const model = await ensureModel('tiny');
const results: Partial<Record<Kind, Measured>> = {};
for (const kind of (values.servers ?? '').split(',') as Kind[]) {
  const target = await startTarget(kind, model);
  try {
    results[kind] = await measure(target);
  } finally {
    await target.stop();
  }
  console.log(`${kind} ${JSON.stringify(results[kind])}`);
}

const row = (kind: Kind): string => {
  const m = results[kind];
  if (m === undefined) return `| ${kind} | – | – | – | – | – | – |`;
  const ms = (a: number, b: number): string => `${a.toFixed(0)} / ${b.toFixed(0)}`;
  return `| ${kind} | ${m.perSecond.toFixed(1)} | ${ms(m.firstP50, m.firstP99)} | ${ms(m.endP50, m.endP99)} | ${m.streams} / ${m.refused} / ${m.failed} | ${m.probeP99.toFixed(1)} (${m.probes}) |`;
};
console.log(`\n${clients} SSE clients, ${settings.sequences} sequences, max_tokens ${maxTokens}, ${seconds} s`);
console.log('| server | streams/s | first event p50 / p99 ms | end p50 / p99 ms | completed / 429 / failed | health p99 ms (probes) |');
console.log('|---|---|---|---|---|---|');
for (const kind of ['semantic', 'llama-server'] as const) console.log(row(kind));
