// The probes of a real server: startup 503 while the model loads and 200 after; readiness 503 while
// starting, when the KV pool is reserved beyond its threshold, and while draining; and a request
// waiting in the queue when a drain begins is answered 503 while the running one finishes.
import t from 'tap';
import { tinyModelPath } from '../helpers/model.js';
import { logged, startServer, type RunningServer } from '../helpers/server.js';
import { readSseData } from '../helpers/sse.js';

const modelPath = await tinyModelPath();

async function serve(extra: string[], readyMessage = 'ready'): Promise<RunningServer> {
  const server = await startServer(['serve', '--port', '0', '--model', modelPath, '--model-id', 'tiny', '--threads', '1', ...extra], readyMessage);
  t.teardown(() => server.stop('SIGKILL'));
  return server;
}

async function probe(server: RunningServer, path: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(server.url + path);
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

/** A streaming request; `started` resolves at its first content token, `events` when it ends. */
async function stream(server: RunningServer, agent: string, maxTokens: number): Promise<{ events: Promise<string[]> }> {
  let onStarted!: () => void;
  const started = new Promise<void>((resolve) => (onStarted = resolve));
  const response = await fetch(`${server.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-agent-id': agent },
    body: JSON.stringify({ model: 'tiny', messages: [{ role: 'user', content: `${agent}: go on for a while.` }], max_tokens: maxTokens, temperature: 0, stream: true }),
  });
  const events = readSseData(response, (data) => data.includes('"content":"') && onStarted());
  await started;
  return { events };
}

t.test('startup: 503 while the model loads, 200 once it is warmed up', async (t) => {
  const server = await serve(['--context-size', '16384'], 'listening');
  const loading = await probe(server, '/health/startup');
  t.equal(loading.status, 503);
  t.match(loading.body, { status: 'starting', reason: 'the model is loading' });
  t.equal((await probe(server, '/health/ready')).status, 503, 'not ready while starting');
  t.equal((await probe(server, '/health/live')).status, 200, 'alive all along');
  await logged(server, (line) => line.msg === 'ready');
  t.match(await probe(server, '/health/startup'), { status: 200, body: { status: 'started', model: 'tiny' } });
  t.match(await probe(server, '/health/ready'), { status: 200, body: { status: 'ready', utilisation: 0, queueDepth: 0, activeAgents: 0 } });
});

t.test('readiness: 503 while the KV pool is reserved beyond --ready-max-pool-percent', async (t) => {
  const server = await serve(['--context-size', '2048', '--ready-max-pool-percent', '10']);
  const { events } = await stream(server, 'hog', 1500);
  const busy = await probe(server, '/health/ready');
  t.equal(busy.status, 503);
  t.match(busy.body, { status: 'busy', reason: /^KV pool \d+% reserved \(limit 10%\)$/, activeAgents: 1 });
  await events;
  t.match(await probe(server, '/health/ready'), { status: 200, body: { utilisation: 0 } }, "an idle agent's cells are reclaimable: not counted");
});

t.test('a request waiting when the drain begins gets 503; the running one finishes', async (t) => {
  const server = await serve(['--context-size', '4096', '--max-sequences', '1']);
  const running = await stream(server, 'first', 600);
  const waiting = fetch(`${server.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-agent-id': 'second' },
    body: JSON.stringify({ model: 'tiny', messages: [{ role: 'user', content: 'hello' }], max_tokens: 4 }),
  });
  for (let i = 0; i < 200 && ((await probe(server, '/debug/engine')).body.queuedRequests as number) < 1; i++);
  t.equal((await probe(server, '/debug/engine')).body.queuedRequests, 1, 'the second request is queued');
  server.child.kill('SIGTERM');
  const refused = await waiting;
  t.equal(refused.status, 503);
  t.equal(refused.headers.get('retry-after'), '1');
  t.match(await refused.json(), { error: { code: 'ERR_DRAINING' } });
  t.equal((await running.events).at(-1), '[DONE]', 'the running stream ran to its end');
  t.equal(await server.exited, 0);
});
