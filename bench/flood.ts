/**
 * Stateless traffic, Semantic beside llama-server: many concurrent clients sending short chat
 * completions that name no agent, for a fixed time, through autocannon. Either every client sends the
 * same conversation (identical openings: Semantic derives one agent id for all of them) or each
 * request its own. Both servers run the tiny generated model with matched settings: 16
 * sequences/slots, a 16K unified context, 2 threads, on one llama.cpp library (as
 * bench/vs-llama-server.ts). Prints completed (200) requests per second, p50/p99 latency over all
 * answers, and how many were refused (429) or failed, per load.
 *
 * llama-server queues without bound; Semantic answers 429 beyond `--max-queued` (64 by default).
 * autocannon's clients send their next request the moment an answer comes, 429 or not, so with
 * fewer queue places than clients the surplus clients spin on 429s as fast as the machine lets
 * them, and on these 2 cores that spinning load generator takes the CPU from both servers' work.
 * The bench therefore gives Semantic as many queue places as it has clients (`--max-queued`, 256),
 * as llama-server has; clients that honour Retry-After, as the SDKs do, are in bench/sse-flood.ts.
 *
 *   npm run bench:flood -- [--clients 32,128] [--max-tokens 4,64] [--prompts identical,distinct] [--seconds 10] [--max-queued 256] [--servers semantic,llama-server]
 */
import autocannon from 'autocannon';
import { parseArgs } from 'node:util';
import { ensureModel } from '../shared/gguf/make-model.js';
import { settings, startTarget, type Kind, type Target } from './vs-llama-server-targets.js';

const { values } = parseArgs({
  options: {
    clients: { type: 'string', default: '32,128' },
    'max-tokens': { type: 'string', default: '4,64' },
    prompts: { type: 'string', default: 'identical,distinct' },
    seconds: { type: 'string', default: '10' },
    'max-queued': { type: 'string', default: '256' },
    servers: { type: 'string', default: 'semantic,llama-server' },
  },
});
const list = (value: string | undefined): string[] => (value ?? '').split(',').filter((x) => x !== '');
// llama-server serves a connection per HTTP thread: with fewer threads than clients the surplus waits
// unseen by autocannon's latencies (a request is timed once it is written), so it gets one per client.
const mostClients = Math.max(...list(values.clients).map(Number));
Object.assign(settings, { sequences: 16, context: 16384, threads: 2, maxQueued: Number(values['max-queued']), httpThreads: mostClients + 16 });

interface Load {
  prompts: string;
  clients: number;
  maxTokens: number;
}
interface Measured {
  rps: number;
  p50: number;
  p99: number;
  ok: number;
  refused: number;
  failed: number;
}

const loads: Load[] = list(values.prompts).flatMap((prompts) =>
  list(values.clients).flatMap((clients) => list(values['max-tokens']).map((maxTokens) => ({ prompts, clients: Number(clients), maxTokens: Number(maxTokens) }))),
);

const body = (content: string, maxTokens: number): string => JSON.stringify({ model: 'bench', messages: [{ role: 'user', content }], max_tokens: maxTokens, temperature: 0 });

async function flood(target: Target, load: Load): Promise<Measured> {
  let n = 0;
  const result = await autocannon({
    url: `${target.url}/v1/chat/completions`,
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    connections: load.clients,
    duration: Number(values.seconds),
    timeout: 60,
    requests: [
      {
        setupRequest: (request) => ({
          ...request,
          body: body(load.prompts === 'identical' ? 'Tell me about the sea.' : `Tell me about the sea, request ${n++}.`, load.maxTokens),
        }),
      },
    ],
  });
  const codes = result.statusCodeStats ?? {};
  const count = (code: string): number => codes[code as `${number}`]?.count ?? 0;
  return {
    rps: count('200') / result.duration, // completed requests only: a 429 is cheap, and not a served request
    p50: result.latency.p50,
    p99: result.latency.p99,
    ok: count('200'),
    refused: count('429'),
    failed: result.errors + result.timeouts + result.non2xx - count('429'),
  };
}

async function runAll(target: Target): Promise<Measured[]> {
  const out: Measured[] = [];
  try {
    for (const load of loads) {
      out.push(await flood(target, load));
      console.log(`${target.kind} ${JSON.stringify(load)} ${JSON.stringify(out.at(-1))}`);
    }
  } finally {
    await target.stop();
  }
  return out;
}

const servers = list(values.servers) as Kind[];
const model = await ensureModel('tiny');
const results: Partial<Record<Kind, Measured[]>> = {};
for (const kind of servers) {
  const target = await startTarget(kind, model);
  results[kind] = await runAll(target);
}

const ours = results.semantic ?? [];
const theirs = results['llama-server'] ?? [];
console.log(
  '\n| prompts | clients | max_tokens | Semantic 200/s | llama-server 200/s | ratio | p50 ms (S / L) | p99 ms (S / L) | p99 ratio | 200 / 429 / failed (S) | 200 / 429 / failed (L) |',
);
console.log('|---|---|---|---|---|---|---|---|---|---|---|');
loads.forEach((load, i) => {
  const [s, l] = [ours[i], theirs[i]];
  const cell = (m: Measured | undefined, f: (m: Measured) => number): string => (m === undefined ? '–' : f(m).toFixed(0));
  const ratio = (a: number | undefined, b: number | undefined): string => (a === undefined || b === undefined ? '–' : (a / b).toFixed(2));
  console.log(
    `| ${load.prompts} | ${load.clients} | ${load.maxTokens} | ${cell(s, (m) => m.rps)} | ${cell(l, (m) => m.rps)} | ${ratio(s?.rps, l?.rps)} | ` +
      `${cell(s, (m) => m.p50)} / ${cell(l, (m) => m.p50)} | ${cell(s, (m) => m.p99)} / ${cell(l, (m) => m.p99)} | ${ratio(s?.p99, l?.p99)} | ` +
      `${s === undefined ? '–' : `${s.ok} / ${s.refused} / ${s.failed}`} | ${l === undefined ? '–' : `${l.ok} / ${l.refused} / ${l.failed}`} |`,
  );
});
