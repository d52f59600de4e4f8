/**
 * What observability costs a user (issue 16's benchmark): decode throughput and time to first token
 * of `semantic serve` with everything on — traces exported over OTLP/HTTP to a loopback receiver,
 * `/metrics` scraped every second — against the same with neither. The figure is on/off, and
 * `--control` runs the same bench with both sides off (an A/A run): how far from 1 that comes out is
 * the bench's own resolution. Each round sends `--streams` concurrent streaming chat completions of
 * `--tokens` tokens (greedy) for new agents (bench/observability-rounds.ts).
 *
 * Two designs:
 * - `--design paired` (the default): ONE server with the OTLP exporter and a parent-based sampler
 *   (`OTEL_TRACES_SAMPLER=parentbased_always_off`). An "on" round's requests carry a sampled W3C
 *   `traceparent`, so each is traced end to end and exported, and `/metrics` is scraped as the round
 *   starts and every second while it runs; an "off" round's requests carry none (no span is recorded
 *   or exported) and nothing is scraped. Rounds come in pairs, on/off then off/on (ABBA), and the
 *   figure is the median of the pairs' ratios: no difference between two processes (their start
 *   order, their memory) can enter it, and a busy machine's drift cancels within a pair. Its "off"
 *   still has the SDK loaded and creates unrecorded spans: the cost it measures is a traced request's
 *   over an untraced one's, which is what an operator's sampling rate scales.
 * - `--design processes`: four servers, started plain, observed, observed, plain (observed: the
 *   exporter on, every request traced, scraped every second; plain: `OTEL_TRACES_EXPORTER=none`), each
 *   round visiting all four in a rotated order; the figure is the ratio of the sides' medians. This
 *   includes the SDK's load, but two identical servers already differ here by up to 12 % in TTFT
 *   (docs/benchmarks.md), so it resolves decode, not TTFT.
 *
 *   npm run build && node dist/bench/observability-cost.js --shape qwen2.5-0.5b --rounds 40 --streams 4 --tokens 64 [--design processes] [--control]
 */
import { randomBytes } from 'node:crypto';
import { cpus } from 'node:os';
import { parseArgs } from 'node:util';
import { ensureModel, type ModelShape } from '../shared/gguf/make-model.js';
import { startServer, type RunningServer } from '../test/helpers/server.js';
import { round, settle, traceSink, type Round, type RoundShape } from './observability-rounds.js';
import { median } from './stats.js';

const { values } = parseArgs({
  options: {
    shape: { type: 'string', default: 'qwen2.5-0.5b' },
    model: { type: 'string' },
    rounds: { type: 'string', default: '40' },
    streams: { type: 'string', default: '4' },
    tokens: { type: 'string', default: '64' },
    threads: { type: 'string', default: '0' },
    design: { type: 'string', default: 'paired' },
    /** An A/A run: both sides plain (no traces, no scrapes), to see what the bench itself tilts. */
    control: { type: 'boolean', default: false },
  },
});
const rounds = Number(values.rounds);
const shape: RoundShape = { streams: Number(values.streams), maxTokens: Number(values.tokens) };
const control = values.control === true;
const model = values.model ?? (await ensureModel(values.shape as ModelShape));
const sink = await traceSink();

function serve(env: NodeJS.ProcessEnv): Promise<RunningServer> {
  const args = ['serve', '--port', '0', '--model', model, '--model-id', 'bench', '--threads', values.threads ?? '0'];
  return startServer([...args, '--max-sequences', String(shape.streams), '--context-size', String(shape.streams * (shape.maxTokens + 96))], 'ready', env);
}

const plainEnv = { OTEL_TRACES_EXPORTER: 'none', OTEL_EXPORTER_OTLP_ENDPOINT: '' };
const exportingEnv = { OTEL_EXPORTER_OTLP_ENDPOINT: sink.url, OTEL_BSP_SCHEDULE_DELAY: '1000', OTEL_SERVICE_NAME: 'semantic-bench' };
const scrape = (server: RunningServer): void => void fetch(`${server.url}/metrics`).then((response) => response.text());
const sampledTraceparent = (): Record<string, string> => ({ traceparent: `00-${randomBytes(16).toString('hex')}-${randomBytes(8).toString('hex')}-01` });

/** A round with everything on: traced requests, and scrapes as it starts and every second while it runs. */
async function observedRound(server: RunningServer, label: string): Promise<Round> {
  scrape(server);
  const scraper = setInterval(() => scrape(server), 1000);
  try {
    return await round(server, label, { ...shape, headers: sampledTraceparent });
  } finally {
    clearInterval(scraper);
  }
}

interface Outcome {
  on: Round[];
  off: Round[];
  /** Per pair of adjacent rounds (paired design only): on/off of decode rate and of median TTFT. */
  pairs: { decode: number; ttft: number }[];
}

async function pairedDesign(): Promise<Outcome> {
  const server = await serve(control ? plainEnv : { ...exportingEnv, OTEL_TRACES_SAMPLER: 'parentbased_always_off' });
  const outcome: Outcome = { on: [], off: [], pairs: [] };
  try {
    await round(server, 'warm', shape);
    for (let r = 0; r < rounds; r++) {
      const got: Partial<Record<'on' | 'off', Round>> = {};
      for (const side of r % 2 === 0 ? (['on', 'off'] as const) : (['off', 'on'] as const)) {
        const label = `${side}-${r}`;
        got[side] = side === 'on' && !control ? await observedRound(server, label) : await round(server, label, shape);
        outcome[side].push(got[side]);
        await settle();
      }
      const { on, off } = got as Record<'on' | 'off', Round>;
      outcome.pairs.push({ decode: on.decodePerSecond / off.decodePerSecond, ttft: median(on.ttftMs) / median(off.ttftMs) });
    }
  } finally {
    await server.stop();
  }
  return outcome;
}

async function processesDesign(): Promise<Outcome> {
  // Started plain, observed, observed, plain: an A/A run showed the server started second coming out
  // faster (TTFT 0.77×), so each side gets one early and one late start.
  const servers: { side: 'on' | 'off'; server: RunningServer }[] = [];
  for (const side of ['off', 'on', 'on', 'off'] as const) servers.push({ side, server: await serve(side === 'off' || control ? plainEnv : exportingEnv) });
  const scraper = setInterval(() => servers.forEach(({ side, server }) => side === 'on' && !control && scrape(server)), 1000);
  const outcome: Outcome = { on: [], off: [], pairs: [] };
  try {
    for (const [i, { server }] of servers.entries()) await round(server, `warm-${i}`, shape);
    for (let r = 0; r < rounds; r++) {
      // Each round visits the four in a rotated order, so no server always follows the same one.
      for (let k = 0; k < servers.length; k++) {
        const { side, server } = servers[(r + k) % servers.length]!;
        outcome[side].push(await round(server, `${side}-${r}-${k}`, shape));
        await settle();
      }
    }
  } finally {
    clearInterval(scraper);
    await Promise.all(servers.map(({ server }) => server.stop()));
  }
  return outcome;
}

function report(outcome: Outcome): void {
  const decode = (side: Round[]): number => median(side.map((x) => x.decodePerSecond));
  const ttft = (side: Round[]): number => median(side.flatMap((x) => x.ttftMs));
  const ratio = (f: (side: Round[]) => number): string => (f(outcome.on) / f(outcome.off)).toFixed(3);
  console.log(
    `design ${values.design}${control ? ' (A/A control: both sides off)' : ''}; model ${model}; ${rounds} rounds × ${shape.streams} streams × ${shape.maxTokens} tokens; ` +
      `${cpus().length} CPUs (${cpus()[0]?.model ?? '?'}); trace exports received: ${sink.exports()}`,
  );
  console.log('| | decode tokens/s (median of rounds) | TTFT ms (median of requests) |');
  console.log('|---|---|---|');
  console.log(`| off | ${decode(outcome.off).toFixed(1)} | ${ttft(outcome.off).toFixed(1)} |`);
  console.log(`| on | ${decode(outcome.on).toFixed(1)} | ${ttft(outcome.on).toFixed(1)} |`);
  console.log(`| on / off, ratio of medians | ${ratio(decode)} | ${ratio(ttft)} |`);
  if (outcome.pairs.length > 0) {
    const pairs = (key: 'decode' | 'ttft'): string => median(outcome.pairs.map((pair) => pair[key])).toFixed(3);
    console.log(`| on / off, median of ${outcome.pairs.length} pairs' ratios | ${pairs('decode')} | ${pairs('ttft')} |`);
  }
}

try {
  if (values.design !== 'paired' && values.design !== 'processes') throw new Error(`--design must be paired or processes; got ${values.design}`);
  report(values.design === 'paired' ? await pairedDesign() : await processesDesign());
} finally {
  sink.server.close();
}
