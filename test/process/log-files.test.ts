// --log-file under `supervise --workers 2`, with real workers writing real files: each process rolls
// its own files (the supervisor <stem>.<n>.log, worker slot i <stem>.worker-<i>.<n>.log) at the
// configured size, keeps exactly --log-file-count of them, and writes the very lines it prints on
// stdout, no other process's. And every request line carries what an operator searches by: request
// id, the client's trace id, agent, cache tier, computed and cached tokens, TTFT and status.
import t from 'tap';
import { mkdtempSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tinyModelPath } from '../helpers/model.js';
import { logged, startServer, type RunningServer } from '../helpers/server.js';
import { onConnection } from '../helpers/keep-alive.js';

const SIZE = 1024;
const KEPT = 3;
const REQUESTS = 60;
const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';

type LogLine = Record<string, unknown>;

function getFresh(port: number, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end();
  });
}

/** A process's files, oldest first: `<stem>.<n>.log` by n. */
function filesOf(dir: string, stem: string): string[] {
  const pattern = new RegExp(`^${stem.replace(/\./g, '\\.')}\\.(\\d+)\\.log$`);
  return readdirSync(dir)
    .map((name) => ({ name, n: Number(pattern.exec(name)?.[1]) }))
    .filter(({ n }) => Number.isInteger(n))
    .sort((a, b) => a.n - b.n)
    .map(({ name }) => name);
}

const linesOf = (path: string): LogLine[] =>
  readFileSync(path, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as LogLine);

/** Pruning follows a rotation asynchronously: polled, bounded, until the files left are `count`. */
async function settled(dir: string, stem: string, count: number): Promise<string[]> {
  for (let i = 0; i < 100 && filesOf(dir, stem).length !== count; i++) await new Promise((resolve) => setTimeout(resolve, 50));
  return filesOf(dir, stem);
}

function chat(agent: Agent, port: number, headers: Record<string, string>): Promise<{ status: number; headers: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const body = JSON.stringify({ model: 'tiny', messages: [{ role: 'user', content: 'hello there, tell me a story' }], max_tokens: 4, temperature: 0 });
    const req = request({ host: '127.0.0.1', port, method: 'POST', path: '/v1/chat/completions', agent, headers: { 'content-type': 'application/json', ...headers } }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

const requestLine = (server: RunningServer, requestId: string): LogLine | undefined => server.logs.find((line) => line.msg === 'request' && line.requestId === requestId);

t.test('supervise --workers 2 --log-file: per-process files rotate at the size and keep the count, with no clash', async (t) => {
  const dir = join(mkdtempSync(join(tmpdir(), 'semantic-logs-')), 'logs');
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
      '--model-id',
      'tiny',
      '--context-size',
      '1024',
      '--threads',
      '1',
      '--log-file',
      join(dir, 'semantic.log'),
      '--log-file-size',
      '1k',
      '--log-file-count',
      String(KEPT),
      '--log-file-frequency',
      'none',
    ],
    'all workers ready',
  );
  t.teardown(() => server.stop('SIGKILL'));
  const workers = server.logs.filter((line) => line.msg === 'worker ready').map((line) => ({ slot: line.worker as number, pid: line.pid as number }));

  // The request line: a first turn computes its prompt, the next on the same connection (so the same
  // worker) reuses it from the hot tier; the client's traceparent gives the trace id.
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  t.teardown(() => agent.destroy());
  const headers = { 'x-agent-id': 'logged-agent', traceparent: `00-${TRACE_ID}-00f067aa0ba902b7-01` };
  const cold = await chat(agent, server.port, headers);
  const warm = await chat(agent, server.port, headers);
  t.equal(cold.status, 200);
  t.equal(warm.status, 200);
  const coldId = String(cold.headers['x-request-id']);
  const warmId = String(warm.headers['x-request-id']);
  await logged(server, (line) => line.msg === 'request' && (line.requestId === coldId || line.requestId === warmId), 2);
  const first = requestLine(server, coldId)!;
  t.match(first, { requestId: coldId, traceId: TRACE_ID, agentId: 'logged-agent', tier: 'miss', cachedTokens: 0, status: 200, route: '/v1/chat/completions', completionTokens: 4 });
  t.equal(first.computedTokens, first.promptTokens, 'a miss computes its whole prompt');
  t.ok(typeof first.ttftMs === 'number' && first.ttftMs > 0 && first.ttftMs <= (first.durationMs as number), 'TTFT within the request');
  const second = requestLine(server, warmId)!;
  t.match(second, { traceId: TRACE_ID, agentId: 'logged-agent', tier: 'hot', status: 200 });
  t.ok((second.cachedTokens as number) > 0 && second.computedTokens === (second.promptTokens as number) - (second.cachedTokens as number), 'a hot hit: cached + computed = prompt');
  t.equal(second.pid, first.pid);
  t.equal(warm.headers['x-semantic-prompt-tokens-computed'], String(second.computedTokens), 'the line agrees with the response header');
  const untraced = await onConnection(agent, server.port, 'GET', '/health/live');
  await logged(server, (line) => line.requestId === untraced.headers['x-request-id']);
  t.notOk('traceId' in requestLine(server, String(untraced.headers['x-request-id']))!, 'no traceparent: no traceId');

  // Enough lines for many rotations of each worker's 1 KiB files.
  const statuses = await Promise.all(Array.from({ length: REQUESTS }, () => getFresh(server.port, '/health/live')));
  t.ok(statuses.every((status) => status === 200));
  await logged(server, (line) => line.msg === 'request' && line.route === '/health/live', REQUESTS + 1);

  t.same(
    readdirSync(dir).filter((name) => name === 'current.log'),
    [],
    'no current.log symlink to fight over',
  );
  for (const { slot, pid } of workers) {
    const stem = `semantic.worker-${slot}`;
    const files = await settled(dir, stem, KEPT);
    t.equal(files.length, KEPT, `worker ${slot}: exactly ${KEPT} files kept`);
    const ownLines = server.logs.filter((line) => line.pid === pid && line.role === 'worker');
    const fileLines = files.flatMap((name) => linesOf(join(dir, name)));
    t.ok(ownLines.length > fileLines.length, `worker ${slot}: older files were deleted`);
    t.same(fileLines, ownLines.slice(ownLines.length - fileLines.length), `worker ${slot}: its files hold its own latest stdout lines, in order, no other process's`);
    for (const name of files.slice(0, -1)) {
      const size = statSync(join(dir, name)).size;
      t.ok(size >= SIZE && size < SIZE + 1024, `worker ${slot}: ${name} rotated at ${size} bytes (1 KiB + the line that crossed it)`);
    }
  }
  const supervisorFiles = filesOf(dir, 'semantic');
  t.ok(supervisorFiles.length >= 1 && supervisorFiles.length <= KEPT, "the supervisor's own files");
  const supervisorLines = supervisorFiles.flatMap((name) => linesOf(join(dir, name)));
  t.ok(supervisorLines.length > 0 && supervisorLines.every((line) => line.role === 'supervisor'), 'the supervisor writes only its own lines');
  t.ok(
    supervisorLines.some((line) => line.msg === 'all workers ready'),
    'its lines, as on stdout',
  );
});
