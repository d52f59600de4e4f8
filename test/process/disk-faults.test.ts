// Fault injection on the disk tier, with the real server: a read-only cache dir and a full one.
// Turns are still served with their greedy output, each failed write is counted (metric, readiness)
// and logged with its errno code, the process does not crash, and /health/ready says degraded until
// a write succeeds again. The faults are real where the test may mount file systems (root with
// CAP_SYS_ADMIN: a small tmpfs, filled or remounted read-only); elsewhere the file layer's test
// switch SEMANTIC_FAULT_DISK_WRITE (worker/test-faults.ts) raises the same errno codes.
import t, { type Test } from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { greedyReference } from '../helpers/greedy.js';
import { tinyModelPath } from '../helpers/model.js';
import { logged, startServer, type RunningServer } from '../helpers/server.js';
import type { ChatMessage } from '../../shared/protocol/messages.js';

const modelPath = await tinyModelPath();
const MAX = 8;
const conversation: ChatMessage[] = [{ role: 'user', content: 'Write down everything you know about disks. '.repeat(20) }];
const cold = await greedyReference(modelPath, conversation, MAX);

/** A 1 MiB tmpfs at a fresh dir, or undefined where this process may not mount. */
function mountSmallFs(): string | undefined {
  const dir = mkdtempSync(join(tmpdir(), 'semantic-fault-fs-'));
  if (spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', dir]).status === 0) return dir;
  rmSync(dir, { recursive: true, force: true });
  return undefined;
}

function unmount(dir: string): void {
  spawnSync('umount', [dir]);
  rmSync(dir, { recursive: true, force: true });
}

// SEMANTIC_FAULT_TEST_SIMULATE=1 runs the simulated path where mounting works too.
const probe = process.env.SEMANTIC_FAULT_TEST_SIMULATE === '1' ? undefined : mountSmallFs();
const realFaults = probe !== undefined;
if (probe !== undefined) unmount(probe);
t.comment(realFaults ? 'faults made by a small tmpfs (full, then read-only)' : 'no tmpfs mounted: faults simulated by SEMANTIC_FAULT_DISK_WRITE');

async function serve(t: Test, cacheDir: string, env: NodeJS.ProcessEnv = {}): Promise<RunningServer> {
  // An explicit budget: the auto one is sized from the dir's free space, and this dir is meant to fail writes, not to refuse them.
  const args = [
    'serve',
    '--port',
    '0',
    '--model',
    modelPath,
    '--model-id',
    'tiny',
    '--threads',
    '1',
    '--context-size',
    '2048',
    '--cache-dir',
    cacheDir,
    '--disk-cache-bytes',
    '100000000',
  ];
  const server = await startServer(args, 'ready', env);
  t.teardown(() => server.stop());
  return server;
}

async function turn(server: RunningServer, agent: string): Promise<{ status: number; text: string }> {
  const response = await fetch(`${server.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-agent-id': agent },
    body: JSON.stringify({ model: 'tiny', messages: conversation, max_tokens: MAX, temperature: 0 }),
  });
  const body = (await response.json()) as { choices: { message: { content: string } }[] };
  return { status: response.status, text: body.choices[0]?.message.content ?? '' };
}

async function ready(server: RunningServer): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(`${server.url}/health/ready`);
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

async function failureMetric(server: RunningServer, reason: string): Promise<number | undefined> {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`semantic_cache_persist_failures_total{reason="${reason}"}`));
  return line === undefined ? undefined : Number(line.split(' ').at(-1));
}

const writeFailed =
  (reason: string) =>
  (line: Record<string, unknown>): boolean =>
    line.msg === 'agent cache write failed' && line.reason === reason;

/** Two turns of two agents: both served with the cold output; each failed write logged, counted and making readiness degraded. */
async function servedButNotWritten(t: Test, server: RunningServer, reason: string): Promise<void> {
  t.same(await turn(server, 'agent-1'), { status: 200, text: cold.text }, 'a turn is served with its greedy output');
  await logged(server, writeFailed(reason));
  t.same(await turn(server, 'agent-2'), { status: 200, text: cold.text }, "and the next agent's turn too");
  await logged(server, writeFailed(reason), 2);
  const failure = server.logs.find(writeFailed(reason));
  t.equal(failure?.level, 40, 'logged as a warning, with the agent');
  t.equal(failure?.agentId, 'agent-1');
  t.equal(await failureMetric(server, reason), 2, `semantic_cache_persist_failures_total{reason="${reason}"} counts both`);
  const readiness = await ready(server);
  t.equal(readiness.status, 200, 'still ready for traffic');
  t.equal(readiness.body.status, 'degraded');
  t.match(readiness.body.reason, new RegExp(reason));
  t.equal(readiness.body.cacheWriteFailures, 2);
  t.equal((await fetch(`${server.url}/health/live`)).status, 200, 'alive');
  t.equal(server.child.exitCode, null, 'no crash');
}

t.test('a full cache dir (ENOSPC): served, counted, degraded; a write after space is freed clears it', async (t) => {
  const dir = realFaults ? (mountSmallFs() as string) : mkdtempSync(join(tmpdir(), 'semantic-fault-'));
  if (realFaults) t.teardown(() => unmount(dir));
  if (realFaults) spawnSync('dd', ['if=/dev/zero', `of=${join(dir, 'filler')}`, 'bs=64k', 'count=64']); // fills the 1 MiB, ENOSPC at the end
  const server = await serve(t, dir, realFaults ? {} : { SEMANTIC_FAULT_DISK_WRITE: 'ENOSPC' });
  await servedButNotWritten(t, server, 'ENOSPC');
  t.same(
    readdirSync(dir).filter((name) => name.endsWith('.tmp')),
    [],
    'a failed write leaves no temp file',
  );
  if (!realFaults) return;
  rmSync(join(dir, 'filler'));
  t.same(await turn(server, 'agent-3'), { status: 200, text: cold.text });
  await logged(server, (line) => line.msg === 'agent cache persisted' && line.agentId === 'agent-3');
  t.equal((await ready(server)).body.status, 'ready', 'a successful write ends the degraded state');
});

t.test('a read-only cache dir (EROFS): served, counted, degraded, no crash', async (t) => {
  const dir = realFaults ? (mountSmallFs() as string) : mkdtempSync(join(tmpdir(), 'semantic-fault-'));
  if (realFaults) t.teardown(() => unmount(dir));
  if (realFaults) spawnSync('mount', ['-o', 'remount,ro', dir]);
  if (realFaults) t.throws(() => writeFileSync(join(dir, 'probe'), 'x'), { code: 'EROFS' }, 'the dir is read-only even for root');
  const server = await serve(t, dir, realFaults ? {} : { SEMANTIC_FAULT_DISK_WRITE: 'EROFS' });
  await servedButNotWritten(t, server, 'EROFS');
});
