// GET /metrics on a real server: public by default even when API keys are set (Prometheus scrapes
// without credentials), or keyed by `--metrics-access`; and the request counter counts each answered
// request once under its route pattern, unrouted paths under one label.
import t from 'tap';
import { tinyModelPath } from '../helpers/model.js';
import { startServer, type RunningServer } from '../helpers/server.js';

const modelPath = await tinyModelPath();
const [USER_KEY, ADMIN_KEY] = ['user-key-0001', 'admin-key-0001'];

async function serve(flags: string[]): Promise<RunningServer> {
  const server = await startServer(['serve', '--port', '0', '--model', modelPath, '--model-id', 'tiny', '--threads', '1', ...flags], 'ready', {
    SEMANTIC_API_KEYS: USER_KEY,
    SEMANTIC_ADMIN_KEY: ADMIN_KEY,
  });
  t.teardown(() => server.stop());
  return server;
}

async function scrape(server: RunningServer, key?: string): Promise<{ status: number; type: string | null; body: string }> {
  const response = await fetch(`${server.url}/metrics`, { headers: key === undefined ? {} : { authorization: `Bearer ${key}` } });
  return { status: response.status, type: response.headers.get('content-type'), body: await response.text() };
}

/** The value of one sample line, e.g. `semantic_request_total{route="/v1/models",method="GET",status="200"}`. */
function sample(body: string, series: string): number | undefined {
  const line = body.split('\n').find((candidate) => candidate.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

t.test('public by default: scraped without a key, counting each answered request once', async (t) => {
  const server = await serve([]);
  for (let i = 0; i < 3; i++) t.equal((await fetch(`${server.url}/v1/models`, { headers: { 'x-api-key': USER_KEY } })).status, 200);
  t.equal((await fetch(`${server.url}/v1/models`)).status, 401);
  for (const path of ['/nope/1', '/nope/2']) t.equal((await fetch(server.url + path, { headers: { 'x-api-key': USER_KEY } })).status, 404);
  for (const method of ['PROPFIND', 'PURGE']) t.equal((await fetch(`${server.url}/x`, { method, headers: { 'x-api-key': USER_KEY } })).status, 404);
  const madeUp = await fetch(`${server.url}/x`, { method: 'BREW', headers: { 'x-api-key': USER_KEY } });
  t.equal(madeUp.status, 501, 'a method HTTP does not know is 501, before any route');
  t.match(await madeUp.json(), { error: { code: 'ERR_METHOD_NOT_IMPLEMENTED' } });
  const { status, type, body } = await scrape(server);
  t.equal(status, 200);
  t.match(type, /^text\/plain; version=0\.0\.4/);
  t.equal(sample(body, 'semantic_request_total{route="/v1/models",method="GET",status="200"}'), 3);
  t.equal(sample(body, 'semantic_request_total{route="/v1/models",method="GET",status="401"}'), 1);
  t.equal(sample(body, 'semantic_request_total{route="(unrouted)",method="GET",status="404"}'), 2, 'raw paths never become labels');
  t.equal(sample(body, 'semantic_request_total{route="(unrouted)",method="OTHER",status="404"}'), 2, 'nor methods no route has');
  t.equal(sample(body, 'semantic_request_duration_seconds_count{route="/v1/models"}'), 4);
  t.ok(sample(body, 'process_resident_memory_bytes')! > 0, 'process metrics too');
});

t.test('--metrics-access admin: 401 without a key, 403 with a user key, 200 with the admin key', async (t) => {
  const server = await serve(['--metrics-access', 'admin']);
  const none = await scrape(server);
  t.equal(none.status, 401);
  t.match(JSON.parse(none.body), { error: { code: 'ERR_UNAUTHORIZED' } });
  t.equal((await scrape(server, USER_KEY)).status, 403);
  t.equal((await scrape(server, ADMIN_KEY)).status, 200);
});

t.test('--metrics-access user: any API key scrapes', async (t) => {
  const server = await serve(['--metrics-access', 'user']);
  t.equal((await scrape(server)).status, 401);
  t.equal((await scrape(server, USER_KEY)).status, 200);
});
