/**
 * Aggregate decode throughput of `semantic serve` at several concurrency levels, measured in one run
 * (ratios to one stream are what matter on a shared, noisy machine). Each level sends N concurrent
 * streaming chat completions of distinct prompts with `max_tokens` tokens and greedy sampling. Two
 * figures per level: end to end (generated tokens from the usage the server reports, over the whole
 * level's wall time, prefill included) and decode: the engine's own count of sampled tokens
 * (`/debug/engine`), read once every stream has its first token and again when the first stream
 * ends, over that window — the steady state a batch of N agents decodes at. (Counting SSE chunks
 * instead would undercount: a chunk can carry several tokens when a character spans them.)
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
    /** Use llama.cpp's flash attention kernels (`--flash-attention`). */
    'flash-attention': { type: 'boolean', default: false },
  },
});
const levels = (values.levels ?? '1').split(',').map(Number);
const maxTokens = Number(values.tokens);
const model = values.model ?? (await ensureModel(values.shape as ModelShape));
const maxLevel = Math.max(...levels);

const layouts = (values.layouts ?? 'unified').split(',');

function serve(layout: string): Promise<RunningServer> {
  return startServer(
    [
      'serve',
      '--port',
      '0',
      '--model',
      model,
      '--model-id',
      'bench',
      '--threads',
      values.threads ?? '0',
      '--max-sequences',
      String(maxLevel),
      '--context-size',
      String(maxLevel * (maxTokens + 64)),
      '--kv-unified',
      String(layout === 'unified'),
      '--flash-attention',
      String(values['flash-attention']),
    ],
    'ready',
  );
}

interface Window {
  /** Resolves once every stream of the level has its first token. */
  allStarted: Promise<void>;
  started(): void;
  /** Resolves once the first stream ends. */
  firstEnded: Promise<void>;
  ended(): void;
}

function window(concurrency: number): Window {
  let startedCount = 0;
  let onAllStarted!: () => void;
  let onFirstEnded!: () => void;
  const allStarted = new Promise<void>((resolve) => (onAllStarted = resolve));
  const firstEnded = new Promise<void>((resolve) => (onFirstEnded = resolve));
  return { allStarted, firstEnded, started: () => ++startedCount === concurrency && onAllStarted(), ended: () => onFirstEnded() };
}

async function stream(server: RunningServer, index: number, span: Window): Promise<number> {
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
  let first = true;
  const events = await readSseData(response, (data) => {
    if (first && data.includes('"content":"') && !data.includes('"content":""')) {
      first = false;
      span.started();
    }
  });
  span.ended();
  const usage = JSON.parse(events.at(-2) ?? '{}') as { usage?: { completion_tokens: number } };
  return usage.usage?.completion_tokens ?? 0;
}

/** The engine's sampled-token counter and when it was read. */
async function sampled(server: RunningServer): Promise<{ tokens: number; at: number }> {
  const stats = (await (await fetch(`${server.url}/debug/engine`)).json()) as { sampledTokens: number };
  return { tokens: stats.sampledTokens, at: performance.now() };
}

async function level(server: RunningServer, concurrency: number): Promise<{ tokens: number; seconds: number; decode: number }> {
  const start = performance.now();
  const span = window(concurrency);
  const counting = span.allStarted.then(async () => {
    const from = await sampled(server);
    await span.firstEnded;
    const to = await sampled(server);
    return ((to.tokens - from.tokens) * 1000) / (to.at - from.at);
  });
  const counts = await Promise.all(Array.from({ length: concurrency }, (_, i) => stream(server, i, span)));
  const seconds = (performance.now() - start) / 1000;
  return { tokens: counts.reduce((sum, n) => sum + n, 0), seconds, decode: await counting };
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
