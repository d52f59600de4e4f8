// The supervisor's lifecycle with real workers: SIGTERM drains both workers (streams finish, caches
// are written, exit 0) and SIGHUP replaces them one at a time while a client keeps sending requests,
// with no failed request, new worker pids, and agents' next turns served from their caches.
import t from 'tap';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cacheFileName } from '../../shared/cache-files.js';
import { tinyModelPath } from '../helpers/model.js';
import { logged, persisted, startServer, type RunningServer } from '../helpers/server.js';
import { readSseData } from '../helpers/sse.js';
import { onConnection } from '../helpers/keep-alive.js';
import { Agent } from 'node:http';

const modelPath = await tinyModelPath();
/** Streams in flight at the SIGTERM; each worker can run them all, so none waits in a queue. */
const STREAMS = 16;

async function supervise(cacheDir: string): Promise<RunningServer> {
  const server = await startServer(
    [
      'supervise',
      '--workers',
      '2',
      '--port',
      '0',
      '--model',
      modelPath,
      '--model-id',
      'tiny',
      '--threads',
      '1',
      '--cache-dir',
      cacheDir,
      '--context-size',
      '8192',
      '--max-sequences',
      String(STREAMS),
      '--drain-timeout',
      '600',
    ],
    'all workers ready',
  );
  t.teardown(() => server.stop('SIGKILL'));
  return server;
}

async function turn(server: RunningServer, agent: string, content: string): Promise<{ status: number | string; tier: string | null }> {
  const response = await fetch(`${server.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-agent-id': agent },
    body: JSON.stringify({ model: 'tiny', messages: [{ role: 'user', content }], max_tokens: 8, temperature: 0 }),
  });
  const body = (await response.json()) as { error?: { code?: string } };
  // A failure carries its code, so a failed run says which refusal it met.
  const status = response.status === 200 ? 200 : `${response.status} ${body.error?.code ?? ''}`;
  return { status, tier: response.headers.get('x-semantic-cache') };
}

/** Pids of the workers that became ready, in order (from the workers' own log lines). */
const workerPids = (server: RunningServer): number[] => server.logs.filter((line) => line.role === 'worker' && line.msg === 'ready').map((line) => line.pid as number);

t.test('SIGTERM drains both workers: streams finish, new requests get 503, caches are written and used, exit 0', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'semantic-supervise-'));
  const server = await supervise(dir);
  const keepAlive = new Agent({ keepAlive: true, maxSockets: 1 });
  t.teardown(() => keepAlive.destroy());
  t.equal((await onConnection(keepAlive, server.port, 'GET', '/health/ready')).status, 200);
  const streams = Array.from({ length: STREAMS }, async (_, i) => {
    let onStarted!: () => void;
    const started = new Promise<void>((resolve) => (onStarted = resolve));
    const response = await fetch(`${server.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-agent-id': `streamer-${i}` },
      body: JSON.stringify({ model: 'tiny', messages: [{ role: 'user', content: `Streamer ${i}, a long story.` }], max_tokens: 300, temperature: 0, stream: true }),
    });
    const events = readSseData(response, (data) => data.includes('"delta"') && onStarted());
    await started;
    return { events };
  });
  const running = await Promise.all(streams);
  server.child.kill('SIGTERM');
  await logged(server, (line) => line.role === 'worker' && line.msg === 'draining', 2);
  const refused = await onConnection(keepAlive, server.port, 'POST', '/v1/chat/completions', JSON.stringify({ model: 'tiny', messages: [{ role: 'user', content: 'hi' }] }));
  t.equal(refused.status, 503, 'a new request on a kept-alive connection gets 503');
  t.equal(refused.headers.connection, 'close');
  for (const [i, { events }] of running.entries()) t.equal((await events).at(-1), '[DONE]', `stream ${i} ran to its end`);
  t.equal(await server.exited, 0, 'the supervisor exits 0 once both workers drained');
  t.equal(server.logs.filter((line) => line.msg === 'drained').length, 2, 'both workers drained in full');
  for (let i = 0; i < STREAMS; i++) t.ok(existsSync(join(dir, cacheFileName(`streamer-${i}`))), `streamer-${i}'s cache was written`);
  const next = await supervise(dir);
  t.equal((await turn(next, 'streamer-5', 'Streamer 5, a long story.')).tier, 'disk', 'the next server serves streamer-5 from its file');
});

t.test('SIGHUP rolling restart under a client loop: no failed request, new pids, caches hit', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'semantic-supervise-'));
  const server = await supervise(dir);
  const before = workerPids(server);
  const returning = ['ret-0', 'ret-1', 'ret-2', 'ret-3'];
  for (const agent of returning) {
    t.equal((await turn(server, agent, `${agent}: remember this.`)).status, 200);
    await persisted(server, agent);
  }

  let restarting = true;
  const statuses: (number | string)[] = [];
  let onFlowing!: () => void;
  const flowing = new Promise<void>((resolve) => (onFlowing = resolve));
  const loop = async (k: number): Promise<void> => {
    for (let i = 0; restarting && i < 2000; i++) {
      statuses.push(
        await turn(server, `traffic-${k}`, `request ${i}`).then(
          (r) => r.status,
          (error: Error) => `error: ${error.message}`,
        ),
      );
      if (statuses.length === 8) onFlowing();
    }
  };
  const loops = [0, 1, 2, 3].map(loop);
  await flowing; // traffic flows before the signal
  server.child.kill('SIGHUP');
  await logged(server, (line) => line.msg === 'rolling restart done');
  restarting = false;
  await Promise.all(loops);

  t.ok(statuses.length > 0, `${statuses.length} requests sent during the restart`);
  t.same(
    statuses.filter((status) => status !== 200),
    [],
    'every request succeeded',
  );
  const after = workerPids(server).slice(before.length);
  t.equal(after.length, 2, 'two replacement workers became ready');
  t.same(
    after.filter((pid) => before.includes(pid)),
    [],
    'with new pids',
  );
  for (const agent of returning) {
    const next = await turn(server, agent, `${agent}: remember this.`);
    t.equal(next.tier, 'disk', `${agent}'s next turn comes from its cache file`);
  }
});

t.test('SIGKILL of a worker: its streams fail cleanly, it is restarted, caches written before load', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'semantic-supervise-'));
  const server = await startServer(
    ['supervise', '--workers', '1', '--port', '0', '--model', modelPath, '--model-id', 'tiny', '--threads', '1', '--cache-dir', dir, '--context-size', '8192'],
    'all workers ready',
  );
  t.teardown(() => server.stop('SIGKILL'));
  t.equal((await turn(server, 'early', 'early: remember this.')).status, 200);
  await persisted(server, 'early');
  const [victim] = workerPids(server);

  let onStarted!: () => void;
  const started = new Promise<void>((resolve) => (onStarted = resolve));
  const response = await fetch(`${server.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-agent-id': 'doomed' },
    body: JSON.stringify({ model: 'tiny', messages: [{ role: 'user', content: 'A long story.' }], max_tokens: 4000, temperature: 0, stream: true }),
  });
  const outcome = readSseData(response, () => onStarted()).then(
    (events) => `ended: ${events.at(-1) ?? ''}`,
    (error: Error) => `failed: ${error.message}`,
  );
  await started;
  process.kill(victim as number, 'SIGKILL');
  t.match(await outcome, /^failed: /, 'the stream in flight fails with a connection error, no hang');
  await logged(server, (line) => line.role === 'worker' && line.msg === 'ready', 2);
  t.not(workerPids(server)[1], victim, 'a new worker took its place');
  t.equal((await turn(server, 'after', 'after: hello')).status, 200, 'the next request succeeds');
  t.equal((await turn(server, 'early', 'early: remember this.')).tier, 'disk', 'a cache written before the kill loads');
});
