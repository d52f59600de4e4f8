/**
 * The workload `npm run profile` drives (bench/profile.ts): `--concurrency` clients, each sending
 * streaming chat completions one after another for `--seconds`, half of them as returning agents (a
 * hot cache hit each turn after the first) and half as new ones (a miss, a prefill from scratch), so
 * the profile sees the front's SSE, the engine's batching and the write-behind together. It prints
 * what it sent, then exits, and clinic stops the server.
 *
 *   node dist/bench/profile-load.js --port 8080 --concurrency 4 --seconds 10 --tokens 32
 */
import { parseArgs } from 'node:util';
import { readSseData } from '../test/helpers/sse.js';

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: process.env['PORT'] ?? '8080' },
    concurrency: { type: 'string', default: '4' },
    seconds: { type: 'string', default: '10' },
    tokens: { type: 'string', default: '32' },
  },
});
const url = `http://127.0.0.1:${values.port}/v1/chat/completions`;
const counts = { requests: 0, failed: 0, chunks: 0 };

async function client(index: number): Promise<void> {
  const returning = index % 2 === 0;
  for (let turn = 0; Date.now() < until; turn++) {
    const agent = returning ? `profile-agent-${index}` : `profile-agent-${index}-${turn}`;
    const response = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-agent-id': agent },
      body: JSON.stringify({
        model: 'tiny',
        stream: true,
        max_tokens: Number(values.tokens),
        temperature: 0,
        messages: [{ role: 'user', content: `Turn ${turn}: tell me about lighthouses.` }],
      }),
    });
    counts.requests++;
    if (response.status !== 200) {
      counts.failed++;
      await response.body?.cancel();
      continue;
    }
    counts.chunks += (await readSseData(response)).length;
  }
}

/** clinic starts this once the server listens; the model loads after that: wait (bounded) until it is ready. */
async function ready(): Promise<void> {
  for (let i = 0; i < 600; i++) {
    const status = await fetch(`http://127.0.0.1:${values.port}/health/ready`).then(
      (r) => (void r.body?.cancel(), r.status),
      () => 0,
    );
    if (status === 200) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error('the server was not ready within 60 s');
}

await ready();
const until = Date.now() + Number(values.seconds) * 1000;
await Promise.all(Array.from({ length: Number(values.concurrency) }, (_, i) => client(i)));
console.log(JSON.stringify({ workload: 'profile-load', ...counts }));
