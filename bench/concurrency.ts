/**
 * Aggregate decode throughput of `semantic serve` at several concurrency levels, measured in one run
 * (ratios to one stream are what matter on a shared, noisy machine). Each level sends N concurrent
 * streaming chat completions of distinct prompts with `max_tokens` tokens and greedy sampling. Two
 * figures per level: end to end (generated tokens from the usage the server reports, over the whole
 * level's wall time, prefill included) and decode (tokens that arrived while all N streams were
 * generating, over that window: the steady state a batch of N agents decodes at).
 *
 *   npm run build && node dist/bench/concurrency.js --shape qwen2.5-0.5b --levels 1,8,32 --tokens 64 --layouts unified,split
 */
import { cpus } from 'node:os';
import { parseArgs } from 'node:util';
import { ensureModel, type ModelShape } from '../shared/gguf/make-model.js';
import { startServer, type RunningServer } from '../test/helpers/server.js';
import { readSseData } from '../test/helpers/sse.js';

const { values } = parseArgs({
  options: {
    shape: { type: 'string', default: 'qwen2.5-0.5b' },
    model: { type: 'string' },
    levels: { type: 'string', default: '1,8,32' },
    tokens: { type: 'string', default: '64' },
    threads: { type: 'string', default: '0' },
    /** KV layouts to compare: unified (one cell pool) and/or split (one stream per sequence). */
    layouts: { type: 'string', default: 'unified,split' },
  },
});
const levels = (values.levels ?? '1').split(',').map(Number);
const maxTokens = Number(values.tokens);
const model = values.model ?? (await ensureModel(values.shape as ModelShape));
const maxLevel = Math.max(...levels);

const layouts = (values.layouts ?? 'unified').split(',');

function serve(layout: string): Promise<RunningServer> {
  return startServer([
    'serve', '--port', '0', '--model', model, '--model-id', 'bench', '--threads', values.threads ?? '0',
    '--max-sequences', String(maxLevel), '--context-size', String(maxLevel * (maxTokens + 64)), '--kv-unified', String(layout === 'unified'),
  ], 'ready');
}

interface StreamResult {
  tokens: number;
  /** Arrival time of each content chunk. */
  times: number[];
}

async function stream(server: RunningServer, index: number): Promise<StreamResult> {
  const response = await fetch(`${server.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      model: 'bench',
      messages: [{ role: 'user', content: `Agent ${index}: report your status.` }],
      max_tokens: maxTokens,
      temperature: 0,
      stream: true,
      stream_options: { include_usage: true },
    }),
  });
  const times: number[] = [];
  const events = await readSseData(response, (data) => {
    if (data.includes('"content":"')) times.push(performance.now());
  });
  const usage = JSON.parse(events.at(-2) ?? '{}') as { usage?: { completion_tokens: number } };
  return { tokens: usage.usage?.completion_tokens ?? 0, times };
}

/** Tokens per second while every stream was generating: from the last first token to the first last token. */
function decodeRate(streams: StreamResult[]): number {
  const from = Math.max(...streams.map((s) => s.times[0] ?? Infinity));
  const to = Math.min(...streams.map((s) => s.times.at(-1) ?? -Infinity));
  const inWindow = streams.reduce((sum, s) => sum + s.times.filter((at) => at > from && at <= to).length, 0);
  return to > from ? (inWindow * 1000) / (to - from) : 0;
}

async function level(server: RunningServer, concurrency: number): Promise<{ tokens: number; seconds: number; decode: number }> {
  const start = performance.now();
  const streams = await Promise.all(Array.from({ length: concurrency }, (_, i) => stream(server, i)));
  const seconds = (performance.now() - start) / 1000;
  return { tokens: streams.reduce((sum, s) => sum + s.tokens, 0), seconds, decode: decodeRate(streams) };
}

async function run(layout: string): Promise<void> {
  const server = await serve(layout);
  try {
    await level(server, 1); // warm-up: page the weights in
    const results: { concurrency: number; tokens: number; seconds: number; rate: number; decode: number }[] = [];
    for (const concurrency of levels) {
      const { tokens, seconds, decode } = await level(server, concurrency);
      results.push({ concurrency, tokens, seconds, rate: tokens / seconds, decode });
    }
    const base = results[0] ?? { rate: 1, decode: 1 };
    console.log(`\nKV ${layout}: model ${model}, ${maxTokens} tokens per stream, ${cpus().length} CPUs (${cpus()[0]?.model ?? '?'})`);
    console.log('| concurrent streams | tokens | seconds | end-to-end tokens/s | × 1 stream | decode tokens/s | × 1 stream |');
    console.log('|---|---|---|---|---|---|---|');
    for (const r of results) {
      const cells = [r.concurrency, r.tokens, r.seconds.toFixed(2), r.rate.toFixed(1), (r.rate / base.rate).toFixed(2), r.decode.toFixed(1), (r.decode / base.decode).toFixed(2)];
      console.log(`| ${cells.join(' | ')} |`);
    }
  } finally {
    await server.stop();
  }
}

for (const layout of layouts) await run(layout);
