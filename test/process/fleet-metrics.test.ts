// One scrape for a supervised fleet, with real workers over loopback: requests handed to both workers
// add up exactly in one scrape of GET /metrics, whichever worker the scrape reaches; a worker that
// cannot answer (SIGSTOP) is left out after the scrape timeout and counted missing, never a failed
// scrape; and a worker killed while the supervisor waits for it is counted missing at once.
// "Mid-scrape" is an event, not a sleep: the scrape goes out on a kept-alive connection to the other
// worker, and the kill follows the supervisor's own line saying it asked the workers.
import t from 'tap';
import { Agent, request } from 'node:http';
import { tinyModelPath } from '../helpers/model.js';
import { logged, startServer, type RunningServer } from '../helpers/server.js';
import { onConnection } from '../helpers/keep-alive.js';

const SCRAPE_TIMEOUT_MS = 4000;
const ASKED = 'fleet scrape: asking the workers for their metrics';
const SPREAD = 'fleet scrape: answered without some workers';

/** `name{sorted labels}` → value, from a Prometheus text exposition. */
function samples(text: string): Map<string, number> {
  const map = new Map<string, number>();
  for (const line of text.split('\n')) {
    const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (match === null) continue;
    const labels = (match[2] ?? '')
      .split(/,(?=\w+=")/)
      .filter(Boolean)
      .sort()
      .join(',');
    map.set(`${match[1]}{${labels}}`, Number(match[3]));
  }
  return map;
}

/** One GET on a fresh connection: the supervisor hands each new connection to the next worker. */
function getFresh(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      let body = '';
      res.on('data', (chunk: Buffer) => (body += chunk.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** The pid of the worker that served the request with this id (its request line). */
async function servedBy(server: RunningServer, requestId: string): Promise<number> {
  await logged(server, (line) => line.msg === 'request' && line.requestId === requestId);
  return server.logs.find((line) => line.msg === 'request' && line.requestId === requestId)?.pid as number;
}

const count = (server: RunningServer, msg: string): number => server.logs.filter((line) => line.msg === msg).length;

t.test('supervise --workers 2: one scrape adds up both workers; a stopped or killed worker is counted missing', async (t) => {
  const model = await tinyModelPath();
  const server = await startServer(
    [
      'supervise',
      '--workers',
      '2',
      '--port',
      '0',
      '--model',
      model,
      '--context-size',
      '1024',
      '--threads',
      '1',
      '--log-level',
      'debug',
      '--scrape-timeout-ms',
      String(SCRAPE_TIMEOUT_MS),
    ],
    'all workers ready',
  );
  t.teardown(() => server.stop('SIGKILL'));
  const workers = server.logs.filter((line) => line.msg === 'worker ready').map((line) => line.pid as number);
  t.equal(new Set(workers).size, 2);

  const REQUESTS = 20;
  const statuses = await Promise.all(Array.from({ length: REQUESTS }, () => getFresh(server.port, '/health/live')));
  t.ok(statuses.every(({ status }) => status === 200));
  await logged(server, (line) => line.msg === 'request' && line.route === '/health/live', REQUESTS);
  const perWorker = workers.map((pid) => server.logs.filter((line) => line.route === '/health/live' && line.pid === pid).length);
  t.ok(
    perWorker.every((served) => served > 0),
    `each worker served some (${perWorker.join(' + ')})`,
  );

  const scrape = await getFresh(server.port, '/metrics');
  t.equal(scrape.status, 200);
  const all = samples(scrape.body);
  t.equal(all.get('semantic_request_total{method="GET",route="/health/live",status="200"}'), REQUESTS, `one scrape: ${perWorker.join(' + ')} = ${REQUESTS}`);
  t.equal(all.get('semantic_request_duration_seconds_count{route="/health/live"}'), REQUESTS, 'histograms are summed too');
  t.equal(all.get('semantic_scrape_workers_missing{}'), 0);
  t.equal(all.get('semantic_workers_alive{}'), 2);
  t.equal(all.get('semantic_workers_ready{}'), 2);
  t.equal(all.get('semantic_workers_crash_looping{}'), 0);
  t.equal(all.get('semantic_request_queue_limit{}'), 2 * 64, "the fleet's queue room: each worker's --max-queued, summed");
  for (const worker of ['0', '1']) t.ok((all.get(`process_resident_memory_bytes{worker="${worker}"}`) ?? 0) > 0, `worker ${worker}'s RSS is its own series`);
  t.equal(all.get('process_resident_memory_bytes{}'), undefined, 'RSS is never summed');

  // A kept-alive connection stays with the worker it was handed to: the scrapes below reach that one.
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  t.teardown(() => agent.destroy());
  const first = await onConnection(agent, server.port, 'GET', '/health/live');
  const answering = await servedBy(server, String(first.headers['x-request-id']));
  const silent = workers.find((pid) => pid !== answering)!;

  process.kill(silent, 'SIGSTOP');
  const stopped = await onConnection(agent, server.port, 'GET', '/metrics');
  t.equal(stopped.status, 200, 'a worker that cannot answer does not fail the scrape');
  const partial = samples(stopped.body);
  t.equal(partial.get('semantic_scrape_workers_missing{}'), 1);
  t.equal(partial.get('semantic_scrape_missed_reports_total{reason="timeout"}'), 1);
  t.equal(partial.get('semantic_workers_alive{}'), 2);
  const answeringSlot = partial.has('process_resident_memory_bytes{worker="0"}') ? '0' : '1';
  t.ok(
    partial.has(`process_resident_memory_bytes{worker="${answeringSlot}"}`) && !partial.has(`process_resident_memory_bytes{worker="${answeringSlot === '0' ? '1' : '0'}"}`),
    "the stopped worker's series are absent, the other's complete",
  );
  // Logged before the answer went out, but stdout and the HTTP response are two pipes: wait for it.
  await logged(server, (line) => line.msg === SPREAD);
  t.match(
    server.logs.find((line) => line.msg === SPREAD),
    { missing: [{ pid: silent, reason: 'timeout' }], timeoutMs: SCRAPE_TIMEOUT_MS },
  );
  process.kill(silent, 'SIGCONT');
  const whole = samples((await onConnection(agent, server.port, 'GET', '/metrics')).body);
  t.equal(whole.get('semantic_scrape_workers_missing{}'), 0, 'back in the next scrape');

  process.kill(silent, 'SIGSTOP');
  const asked = count(server, ASKED);
  const killedScrape = onConnection(agent, server.port, 'GET', '/metrics');
  await logged(server, (line) => line.msg === ASKED, asked + 1);
  process.kill(silent, 'SIGKILL');
  const killed = await killedScrape;
  t.equal(killed.status, 200, 'a worker killed mid-scrape: still a complete answer from the other');
  const rest = samples(killed.body);
  t.equal(rest.get('semantic_scrape_workers_missing{}'), 1);
  t.equal(rest.get('semantic_scrape_missed_reports_total{reason="exited"}'), 1, 'counted as exited, without waiting for the timeout');
  t.ok((rest.get(`process_resident_memory_bytes{worker="${answeringSlot}"}`) ?? 0) > 0);
  t.ok((rest.get('semantic_request_total{method="GET",route="/health/live",status="200"}') ?? 0) > 0);
});
