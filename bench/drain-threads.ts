/**
 * How long `semantic supervise --workers 2` takes to drain running streams, with the default llama.cpp
 * threads (the CPUs divided among the workers) or a given count per worker (`--threads N`; the old
 * default was one per CPU in every worker, which oversubscribes the cores).
 *
 *   npm run build && node dist/bench/drain-threads.js --threads default --streams 8 --tokens 64
 *   npm run build && node dist/bench/drain-threads.js --threads 2 --streams 8 --tokens 64
 *
 * Each run starts the server on the qwen2.5-0.5b-shaped generated model, opens the streams (one agent
 * each), sends SIGTERM once every stream has its first token, and prints one JSON line: the drain's
 * seconds, the exit code (3: the drain deadline cut it), the streams completed and the load average.
 */
import { request } from 'node:http';
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { ensureModel } from '../shared/gguf/make-model.js';
import { startServer } from '../test/helpers/server.js';

const { values } = parseArgs({
  options: {
    threads: { type: 'string', default: 'default' },
    streams: { type: 'string', default: '8' },
    tokens: { type: 'string', default: '64' },
    'drain-timeout': { type: 'string', default: '120' },
  },
});
const streams = Number(values.streams);
const maxTokens = Number(values.tokens);

/** One streamed request; resolves with its status once the stream ended; `onFirst` at its first bytes. */
function stream(port: number, index: number, onFirst: () => void): Promise<number> {
  const body = JSON.stringify({
    model: 'm',
    stream: true,
    max_tokens: maxTokens,
    temperature: 0,
    messages: [{ role: 'user', content: `stream ${index}: tell me a long story about the sea and the wind.` }],
  });
  return new Promise((resolve) => {
    const req = request(
      { host: '127.0.0.1', port, method: 'POST', path: '/v1/chat/completions', agent: false, headers: { 'content-type': 'application/json', 'x-agent-id': `s${index}` } },
      (res) => {
        res.once('data', onFirst);
        res.on('data', () => undefined);
        res.on('end', () => resolve(res.statusCode ?? 0));
        res.on('error', () => resolve(-1));
      },
    );
    req.on('error', () => resolve(-1));
    req.end(body);
  });
}

const model = await ensureModel('qwen2.5-0.5b');
const threads = values.threads === 'default' ? [] : ['--threads', values.threads];
const server = await startServer(
  ['supervise', '--workers', '2', '--port', '0', '--model', model, '--model-id', 'm', '--context-size', '4096', '--drain-timeout', values['drain-timeout'], ...threads],
  'all workers ready',
);
const perWorker = server.logs.find((line) => line.msg === 'llama.cpp threads per worker')?.threadsPerWorker ?? values.threads;
let started = 0;
let allStarted!: () => void;
const firstTokens = new Promise<void>((resolve) => (allStarted = resolve));
const done = Array.from({ length: streams }, (_, i) => stream(server.port, i, () => ++started === streams && allStarted()));
await firstTokens;
const signalledAt = performance.now();
const exit = await server.stop('SIGTERM');
const drainSeconds = (performance.now() - signalledAt) / 1000;
const statuses = await Promise.all(done);
console.log(
  JSON.stringify({
    threadsPerWorker: perWorker,
    streams,
    maxTokens,
    exit,
    drainSeconds: Number(drainSeconds.toFixed(1)),
    completed: statuses.filter((s) => s === 200).length,
    load1: Number((loadavg()[0] ?? 0).toFixed(1)),
  }),
);
