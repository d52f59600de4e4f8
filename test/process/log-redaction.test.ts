// API keys never reach the logs of a real server: every byte it writes to stdout and stderr, at the
// most verbose level, through accepted, refused and failing requests that carry keys in
// `Authorization: Bearer` and `x-api-key`, and keys given on the command line, in the env and in a
// file; under `semantic serve` and under `semantic supervise`, whose workers get the config as JSON.
import t, { type Test } from 'tap';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tinyModelPath } from '../helpers/model.js';
import { cliPath } from '../helpers/server.js';

const modelPath = await tinyModelPath();
const keys = {
  flag: 'sk-flag-key-1f2e3d4c',
  env: 'sk-env-key-5a6b7c8d',
  file: 'sk-file-key-9e8f7a6b',
  admin: 'sk-admin-key-0a1b2c3d',
  /** Not a configured key: a client's typo of one is as secret as the key. */
  wrong: 'sk-wrong-key-4d5e6f70',
};

interface Captured {
  port: number;
  output: () => string;
  lines: () => Record<string, unknown>[];
  stop: () => Promise<number | null>;
}

/** Starts the CLI with every byte of stdout and stderr kept, from the first. */
function start(args: string[], readyMessage: string): Promise<Captured> {
  const child = spawn(process.execPath, [cliPath, ...args], {
    env: { ...process.env, SEMANTIC_API_KEYS: keys.env, SEMANTIC_ADMIN_KEY: keys.admin },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const lines = (): Record<string, unknown>[] =>
    output.split('\n').flatMap((line) => {
      try {
        return [JSON.parse(line) as Record<string, unknown>];
      } catch {
        return [];
      }
    });
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  return new Promise((resolve, reject) => {
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      const ready = lines().find((line) => line.msg === readyMessage && typeof line.port === 'number');
      if (ready !== undefined) resolve({ port: ready.port as number, output: () => output, lines, stop: () => (child.kill('SIGTERM'), exited) });
    });
    void exited.then((code) => reject(new Error(`exited with ${code} before "${readyMessage}":\n${output}`)));
  });
}

/** Requests carrying every key, both ways, on user, admin and public routes, accepted and refused. */
async function keyedRequests(t: Test, port: number, modelsDir: string): Promise<number[]> {
  const base = `http://127.0.0.1:${port}`;
  const chat = JSON.stringify({ model: 'tiny', messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 });
  const calls: [string, string, Record<string, string>, string | undefined][] = [];
  for (const key of Object.values(keys)) {
    for (const header of [{ authorization: `Bearer ${key}` }, { 'x-api-key': key }] as Record<string, string>[]) {
      calls.push(['POST', '/v1/chat/completions', header, chat]);
      calls.push(['POST', '/v1/messages', header, chat]);
      calls.push(['GET', '/admin/config', header, undefined]);
      calls.push(['GET', '/v1/agents/no-such-agent', header, undefined]);
      calls.push(['GET', '/health/ready', header, undefined]);
    }
  }
  calls.push(['POST', '/v1/chat/completions', { authorization: `Basic ${Buffer.from(`user:${keys.flag}`).toString('base64')}` }, chat]);
  calls.push(['POST', '/v1/chat/completions', { authorization: `Bearer ${keys.flag}`, 'content-type': 'text/plain' }, 'not json']);
  // A swap that fails (a GGUF llama.cpp cannot load) logs a warning with its error and context.
  calls.push(['POST', '/admin/model', { authorization: `Bearer ${keys.admin}` }, JSON.stringify({ path: join(modelsDir, 'truncated.gguf') })]);
  const statuses: number[] = [];
  for (const [method, path, headers, body] of calls) {
    const response = await fetch(base + path, { method, headers: { 'content-type': 'application/json', ...headers }, ...(body === undefined ? {} : { body }) });
    statuses.push(response.status);
    await response.arrayBuffer();
  }
  t.ok(statuses.includes(200) && statuses.includes(401) && statuses.includes(403), `accepted and refused: ${[...new Set(statuses)].sort().join(', ')}`);
  return statuses;
}

function assertNoKey(t: Test, output: string): void {
  for (const [name, key] of Object.entries(keys)) t.notOk(output.includes(key), `the ${name} key is in no log line`);
  // Nor a part long enough to narrow a guess (the key after its common prefix).
  for (const [name, key] of Object.entries(keys)) t.notOk(output.includes(key.slice(-8)), `nor the end of the ${name} key`);
}

function setup(): { dir: string; keysFile: string } {
  const dir = mkdtempSync(join(tmpdir(), 'semantic-redaction-'));
  const keysFile = join(dir, 'keys.txt');
  writeFileSync(keysFile, `# keys\n${keys.file}\n`);
  writeFileSync(join(dir, 'truncated.gguf'), readFileSync(modelPath).subarray(0, 4096));
  return { dir, keysFile };
}

t.test('serve at log level trace: no key in any line', async (t) => {
  const { dir, keysFile } = setup();
  const common = ['--port', '0', '--model', modelPath, '--model-id', 'tiny', '--threads', '1', '--context-size', '512', '--cache-dir', dir, '--models-dir', dir];
  const server = await start(['serve', ...common, '--log-level', 'trace', '--api-keys', keys.flag, '--api-keys-file', keysFile], 'ready');
  t.teardown(() => server.stop());
  await keyedRequests(t, server.port, dir);
  t.equal(await server.stop(), 0, 'drained and stopped');
  const requests = server.lines().filter((line) => line.msg === 'request');
  t.ok(requests.length >= 50, `${requests.length} request lines were logged`);
  t.ok(
    server.lines().some((line) => line.msg === 'model swap failed'),
    'the failed swap logged its error',
  );
  assertNoKey(t, server.output());
});

t.test('supervise: the workers get the keys in their config, and log none', async (t) => {
  const { dir, keysFile } = setup();
  const common = ['--port', '0', '--model', modelPath, '--model-id', 'tiny', '--threads', '1', '--context-size', '512', '--cache-dir', dir];
  const server = await start(['supervise', '--workers', '1', ...common, '--log-level', 'trace', '--api-keys', keys.flag, '--api-keys-file', keysFile], 'all workers ready');
  t.teardown(() => server.stop());
  await keyedRequests(t, server.port, dir);
  t.equal(await server.stop(), 0, 'drained and stopped');
  t.ok(server.lines().filter((line) => line.msg === 'request' && line.role === 'worker').length >= 50, 'the worker logged the requests');
  assertNoKey(t, server.output());
});
