// The admin API on a real server with two tiny models (seeds 0 and 1, different weights): a model swap
// under load (streams in flight finish on the old model, later requests use the new one, each
// model's cache files survive the other), a failed swap (the old model serves again), runtime limits
// without a restart, clearing caches, and the admin key.
import t from 'tap';
import { copyFileSync, existsSync, linkSync, mkdirSync, mkdtempSync, readdirSync, symlinkSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureModel } from '../../shared/gguf/make-model.js';
import { greedyReference } from '../helpers/greedy.js';
import { readSseData } from '../helpers/sse.js';
import { sample } from '../helpers/exposition.js';
import { logged, persisted, startServer, type RunningServer } from '../helpers/server.js';
import type { ChatMessage } from '../../shared/protocol/messages.js';

const modelA = await ensureModel('tiny', 0);
const modelB = await ensureModel('tiny', 1);
const [USER_KEY, ADMIN_KEY] = ['user-key-0001', 'admin-key-0001'];
const STREAMS = 3;
const STREAM_TOKENS = 200;
const MAX = 8;
const hello: ChatMessage[] = [{ role: 'user', content: 'Tell me a long story about a lighthouse.' }];

async function serve(cacheDir: string, flags: string[] = []): Promise<RunningServer> {
  const args = [
    'serve',
    '--port',
    '0',
    '--model',
    modelA,
    '--model-id',
    'tiny',
    '--threads',
    '1',
    '--context-size',
    '4096',
    '--max-sequences',
    '4',
    '--cache-dir',
    cacheDir,
    ...flags,
  ];
  const server = await startServer(args, 'ready', { SEMANTIC_API_KEYS: USER_KEY, SEMANTIC_ADMIN_KEY: ADMIN_KEY });
  t.teardown(() => server.stop());
  return server;
}

interface Answer {
  status: number;
  headers: Headers;
  body: Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
}

/** `key` null: no key at all. */
async function call(server: RunningServer, method: string, path: string, body?: unknown, key: string | null = ADMIN_KEY): Promise<Answer> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (key !== null) headers.authorization = `Bearer ${key}`;
  const response = await fetch(server.url + path, { method, headers, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
  return { status: response.status, headers: response.headers, body: (await response.json()) as Answer['body'] };
}

function chat(server: RunningServer, model: string, agent: string, maxTokens = MAX): Promise<Answer> {
  return fetch(`${server.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${USER_KEY}`, 'x-agent-id': agent },
    body: JSON.stringify({ model, messages: hello, max_tokens: maxTokens, temperature: 0 }),
  }).then(async (response) => ({ status: response.status, headers: response.headers, body: (await response.json()) as Answer['body'] }));
}

/** A stream's text, its usage and whether it ended with [DONE]; `onFirst` runs at its first content chunk. */
async function stream(
  server: RunningServer,
  agent: string,
  onFirst: () => void,
  messages = hello,
  maxTokens = STREAM_TOKENS,
): Promise<{ text: string; completionTokens: number; done: boolean }> {
  const response = await fetch(`${server.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${USER_KEY}`, 'x-agent-id': agent },
    body: JSON.stringify({ model: 'tiny', messages, max_tokens: maxTokens, temperature: 0, stream: true, stream_options: { include_usage: true } }),
  });
  let text = '';
  let first = true;
  let completionTokens = -1;
  const events = await readSseData(response, (data) => {
    if (data === '[DONE]') return;
    const chunk = JSON.parse(data) as { choices: { delta: { content?: string } }[]; usage?: { completion_tokens: number } | null };
    const piece = chunk.choices[0]?.delta.content ?? '';
    text += piece;
    if (piece !== '' && first) {
      first = false;
      onFirst();
    }
    if (chunk.usage) completionTokens = chunk.usage.completion_tokens;
  });
  return { text, completionTokens, done: events.at(-1) === '[DONE]' };
}

/** Resolves once the admin API reports a swap running, or once `settled` says the swap is over; bounded. */
async function swapStarted(server: RunningServer, settled: () => boolean): Promise<void> {
  for (let i = 0; i < 10_000 && !settled(); i++) {
    if ((await call(server, 'GET', '/admin/model')).body.swapping === true) return;
  }
}

t.test('swap under load: streams finish on the old model, later requests use the new one, both models keep their files', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'semantic-admin-'));
  const server = await serve(dir);
  const [oldStream, oldShort, newShort] = await Promise.all([
    greedyReference(modelA, hello, STREAM_TOKENS),
    greedyReference(modelA, hello, MAX),
    greedyReference(modelB, hello, MAX),
  ]);
  t.not(oldShort.text, newShort.text, 'the two models answer differently');

  t.equal((await chat(server, 'tiny', 'keep-a')).status, 200);
  await persisted(server, 'keep-a');
  t.ok(existsSync(join(dir, 'keep-a.safetensors')), 'the old model wrote its agent file');

  let started = 0;
  let allStarted!: () => void;
  const running = new Promise<void>((resolve) => (allStarted = resolve));
  const streams = Array.from({ length: STREAMS }, (_, i) => stream(server, `stream-${i}`, () => ++started === STREAMS && allStarted()));
  await running;
  let swapDone = false;
  const swap = call(server, 'POST', '/admin/model', { path: modelB, id: 'tiny-b' }).finally(() => (swapDone = true));
  await swapStarted(server, () => swapDone);
  // Named the old model: held during the swap (or arriving after it), then 404 since another model serves.
  const stale = await chat(server, 'tiny', 'stale');
  t.equal(stale.status, 404);
  t.match(stale.body, { error: { code: 'ERR_MODEL_NOT_FOUND', param: 'model', type: 'invalid_request_error' } });

  for (const result of await Promise.all(streams)) {
    t.equal(result.text, oldStream.text, 'a stream in flight finished on the old model');
    t.equal(result.completionTokens, oldStream.tokens.length);
    t.ok(result.done, 'and ended with [DONE]');
  }
  const swapped = await swap;
  t.equal(swapped.status, 200);
  t.match(swapped.body, { object: 'admin.model', previous: 'tiny', model: { id: 'tiny-b', path: modelB, architecture: 'qwen2' } });
  const models = await call(server, 'GET', '/v1/models', undefined, USER_KEY);
  t.same(
    models.body.data.map((m: { id: string }) => m.id),
    ['tiny-b'],
    '/v1/models names the new model',
  );
  t.match((await call(server, 'GET', '/admin/model')).body, { model: { id: 'tiny-b' }, swapping: false });

  const fresh = await chat(server, 'tiny-b', 'keep-a');
  t.equal(fresh.status, 200);
  t.equal(fresh.body.choices[0].message.content, newShort.text, 'the new model answers');
  t.equal(fresh.body.usage.prompt_tokens_details.cached_tokens, 0, "the old model's cache of this agent is never served to the new one");
  await persisted(server, 'keep-a', 2);
  t.ok(existsSync(join(dir, 'keep-a.safetensors')), "the old model's file is still there");
  for (let i = 0; i < STREAMS; i++) t.ok(existsSync(join(dir, `stream-${i}.safetensors`)), `stream-${i}: its turn was written before the unload`);
  const [modelDir] = readdirSync(join(dir, 'models'));
  t.same(readdirSync(join(dir, 'models', modelDir ?? '')), ['keep-a.safetensors'], "the new model's files live in their own folder");
  t.notOk(existsSync(join(dir, 'quarantine')), 'nothing was quarantined');

  const back = await call(server, 'POST', '/admin/model', { path: modelA, id: 'tiny' });
  t.equal(back.status, 200, 'swapped back');
  const returning = await chat(server, 'tiny', 'keep-a');
  t.equal(returning.headers.get('x-semantic-cache'), 'disk', "the agent's file of the old model serves it again");
  t.equal(returning.body.choices[0].message.content, oldShort.text);
  t.equal(returning.body.usage.prompt_tokens_details.cached_tokens, oldShort.promptTokens - 1);
});

t.test('a failed swap: the old model is loaded back and serves; bad paths are refused before anything is drained', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'semantic-admin-'));
  const server = await serve(dir, ['--models-dir', dir]);
  const reference = await greedyReference(modelA, hello, MAX);
  const truncated = join(dir, 'truncated.gguf');
  writeFileSync(truncated, readFileSync(modelA).subarray(0, 4096));
  const notGguf = join(dir, 'not-a-model.gguf');
  writeFileSync(notGguf, 'hello');

  const failed = await call(server, 'POST', '/admin/model', { path: truncated, id: 'broken' });
  t.equal(failed.status, 422);
  t.match(failed.body, { error: { code: 'ERR_MODEL_LOAD_FAILED', type: 'invalid_request_error', param: 'path', message: /loaded back and serves again/ } });
  const models = await call(server, 'GET', '/v1/models', undefined, USER_KEY);
  t.same(
    models.body.data.map((m: { id: string }) => m.id),
    ['tiny'],
    '/v1/models unchanged',
  );
  const served = await chat(server, 'tiny', 'after-failure');
  t.equal(served.status, 200);
  t.equal(served.body.choices[0].message.content, reference.text, 'the old model serves');

  const cases: [unknown, string, RegExp][] = [
    [{ path: join(dir, 'missing.gguf') }, 'path', /no readable file/],
    [{ path: notGguf }, 'path', /not a GGUF file/],
    [{ path: dir }, 'path', /not a regular file/],
    [{ path: 'relative/model.gguf' }, 'path', /absolute path/],
    [{ path: modelB, name: 'x' }, 'name', /not a field/],
    [{ path: 7 }, 'path', /Invalid 'path'/],
    [{}, 'path', /Invalid 'path'/],
  ];
  for (const [body, param, message] of cases) {
    const answer = await call(server, 'POST', '/admin/model', body);
    t.equal(answer.status, 400, `${JSON.stringify(body)}: 400`);
    t.match(answer.body, { error: { code: 'ERR_BAD_REQUEST', type: 'invalid_request_error', param, message } });
  }
  t.match((await call(server, 'GET', '/admin/model')).body, { model: { id: 'tiny', path: modelA }, swapping: false });
});

t.test('swaps load only under --models-dir: a path outside, `..` or a link out is 403 before anything is drained', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'semantic-admin-'));
  const models = join(dir, 'models');
  mkdirSync(models);
  const elsewhere = join(dir, 'elsewhere.gguf');
  writeFileSync(elsewhere, readFileSync(modelA).subarray(0, 4096));
  symlinkSync(modelB, join(models, 'link-out.gguf'));
  symlinkSync(dir, join(models, 'up'));
  const server = await serve(dir, ['--models-dir', models]);
  const reference = await greedyReference(modelA, hello, MAX);
  const refusals: [string, RegExp][] = [
    [modelB, /is outside the models dir/],
    [elsewhere, /is outside the models dir/],
    [join(models, '..', 'elsewhere.gguf'), /is outside the models dir/],
    [join(models, 'link-out.gguf'), /once its links are resolved/],
    [join(models, 'up', 'elsewhere.gguf'), /once its links are resolved/],
  ];
  for (const [path, message] of refusals) {
    const answer = await call(server, 'POST', '/admin/model', { path, id: 'other' });
    t.equal(answer.status, 403, `${path}: 403`);
    t.match(answer.body, { error: { code: 'ERR_MODEL_PATH_FORBIDDEN', type: 'invalid_request_error', param: 'path', message } });
  }
  t.same(
    server.logs.filter((line) => line.msg === 'model swap started'),
    [],
    'no swap started',
  );
  t.match((await call(server, 'GET', '/admin/model')).body, { model: { id: 'tiny', path: modelA }, swapping: false });
  const served = await chat(server, 'tiny', 'after-refusals');
  t.equal(served.body.choices[0].message.content, reference.text, 'the model served is untouched');
});

t.test('a second swap while one runs: 409', async (t) => {
  const server = await serve(mkdtempSync(join(tmpdir(), 'semantic-admin-')));
  // A running stream keeps the swap waiting for it.
  let began!: () => void;
  const streaming = new Promise<void>((resolve) => (began = resolve));
  const running = stream(server, 'runner', () => began(), [{ role: 'user', content: 'Talk to me for a while.' }], 300);
  await streaming;
  const first = call(server, 'POST', '/admin/model', { path: modelB, id: 'tiny-b' });
  let settled = false;
  void first.finally(() => (settled = true));
  await swapStarted(server, () => settled);
  const second = await call(server, 'POST', '/admin/model', { path: modelA, id: 'tiny' });
  // The first swap may have ended before the second arrived: then the second is a plain swap back.
  if (second.status !== 200) t.match(second, { status: 409, body: { error: { code: 'ERR_CONFLICT' } } });
  t.equal((await first).status, 200);
  t.ok((await running).done);
});

t.test('runtime limits: read, changed without a restart, checked', async (t) => {
  const server = await serve(mkdtempSync(join(tmpdir(), 'semantic-admin-')), ['--max-sequences', '1', '--batch-tokens', '256']);
  t.same((await call(server, 'GET', '/admin/config')).body, { object: 'admin.config', batch_tokens: 256, max_batch_tokens: 256, max_queued: 64, max_queued_tokens: 4 * 4096 });
  const patched = await call(server, 'PATCH', '/admin/config', { max_queued: 0, batch_tokens: 64 });
  t.equal(patched.status, 200);
  t.same(patched.body, { object: 'admin.config', batch_tokens: 64, max_batch_tokens: 256, max_queued: 0, max_queued_tokens: 4 * 4096 });
  t.same((await call(server, 'GET', '/admin/config')).body, patched.body, 'GET shows the new values');

  // One sequence, held by a running stream: the next request would queue, and the queue holds none.
  let first!: () => void;
  const streaming = new Promise<void>((resolve) => (first = resolve));
  const running = stream(server, 'runner', () => first(), [{ role: 'user', content: 'Talk to me for a while.' }], 300);
  await streaming;
  const refused = await chat(server, 'tiny', 'waiter');
  t.equal(refused.status, 429);
  t.match(refused.body, { error: { code: 'ERR_QUEUE_FULL', type: 'rate_limit_error' } });
  t.equal(refused.headers.get('retry-after'), '1');
  t.ok((await running).done, 'the running stream was not disturbed');

  const cases: [unknown, string, RegExp][] = [
    [{ batch_tokens: 257 }, 'batch_tokens', /at most 256/],
    [{ batch_tokens: 0 }, 'batch_tokens', /Invalid 'batch_tokens'/],
    [{ max_queued: -1 }, 'max_queued', /Invalid 'max_queued'/],
    [{ max_queued_tokens: 'many' }, 'max_queued_tokens', /Invalid 'max_queued_tokens'/],
    [{ max_queue: 3 }, 'max_queue', /not a field/],
  ];
  for (const [body, param, message] of cases) {
    const answer = await call(server, 'PATCH', '/admin/config', body);
    t.equal(answer.status, 400, `${JSON.stringify(body)}: 400`);
    t.match(answer.body, { error: { code: 'ERR_BAD_REQUEST', param, message } });
  }
  t.same((await call(server, 'GET', '/admin/config')).body, patched.body, 'a refused change changed nothing');
  t.equal((await call(server, 'PATCH', '/admin/config', { max_queued: 64 })).status, 200);
  t.equal((await chat(server, 'tiny', 'waiter')).status, 200, 'served again');
});

t.test('clear caches: the next turn is a miss and no tier lists the agent', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'semantic-admin-'));
  const server = await serve(dir);
  const reference = await greedyReference(modelA, hello, MAX);
  t.equal((await chat(server, 'tiny', 'agent-1')).status, 200);
  const warm = await chat(server, 'tiny', 'agent-1');
  t.equal(warm.body.usage.prompt_tokens_details.cached_tokens, reference.promptTokens - 1, 'cached before the clear');
  const cleared = await call(server, 'POST', '/admin/caches/clear');
  t.equal(cleared.status, 200);
  t.match(cleared.body, { object: 'admin.caches.cleared', tiers: ['hot', 'ram', 'disk'], cleared: { hot: 1, ram: 0 }, skipped: [] });
  t.same((await call(server, 'GET', '/v1/agents', undefined, USER_KEY)).body, { object: 'list', data: [] });
  t.notOk(existsSync(join(dir, 'agent-1.safetensors')), 'its file is gone');
  const cold = await chat(server, 'tiny', 'agent-1');
  t.equal(cold.body.usage.prompt_tokens_details.cached_tokens, 0);
  t.equal(cold.body.choices[0].message.content, reference.text);

  const hotOnly = await call(server, 'POST', '/admin/caches/clear', { tiers: ['hot'] });
  t.match(hotOnly.body, { tiers: ['hot'], cleared: { hot: 1, ram: 0, disk: 0 } });
  t.ok(existsSync(join(dir, 'agent-1.safetensors')), 'its turn was written before its cells were dropped');
  const fromDisk = await chat(server, 'tiny', 'agent-1');
  t.equal(fromDisk.headers.get('x-semantic-cache'), 'disk', 'clearing hot kept (and wrote) the disk file');
  const bad = await call(server, 'POST', '/admin/caches/clear', { tiers: ['warm'] });
  t.match(bad, { status: 400, body: { error: { code: 'ERR_BAD_REQUEST', param: 'tiers.0' } } });
});

t.test('admin routes need the admin key: a user key is 403, none is 401', async (t) => {
  const server = await serve(mkdtempSync(join(tmpdir(), 'semantic-admin-')));
  const routes: [string, string, unknown][] = [
    ['GET', '/admin/model', undefined],
    ['POST', '/admin/model', { path: modelB }],
    ['GET', '/admin/config', undefined],
    ['PATCH', '/admin/config', { max_queued: 0 }],
    ['POST', '/admin/caches/clear', undefined],
  ];
  for (const [method, path, body] of routes) {
    t.match(await call(server, method, path, body, USER_KEY), { status: 403, body: { error: { code: 'ERR_FORBIDDEN' } } }, `${method} ${path}: user key`);
    t.match(await call(server, method, path, body, null), { status: 401, body: { error: { code: 'ERR_UNAUTHORIZED' } } }, `${method} ${path}: no key`);
  }
  t.match((await call(server, 'GET', '/admin/config')).body, { max_queued: 64 }, 'nothing was changed');
});

/** A hard link where the file system allows one (instant), else a copy. */
function placeModel(from: string, to: string): void {
  try {
    linkSync(from, to);
  } catch {
    copyFileSync(from, to);
  }
}

t.test('under the supervisor a swap is a rolling restart onto the new model; a failed one leaves the old workers serving', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'semantic-admin-'));
  // The supervisor fixes --models-dir at start (here: the folder of the first model) and the workers check it.
  const modelsDir = join(dir, 'models-dir');
  mkdirSync(modelsDir);
  const startModel = join(modelsDir, 'tiny-a.gguf');
  placeModel(modelA, startModel);
  const newModel = join(modelsDir, 'tiny-b.gguf');
  placeModel(modelB, newModel);
  const args = ['supervise', '--workers', '1', '--port', '0', '--model', startModel, '--model-id', 'tiny', '--threads', '1', '--cache-dir', dir, '--context-size', '4096'];
  const server = await startServer(args, 'all workers ready', { SEMANTIC_API_KEYS: USER_KEY, SEMANTIC_ADMIN_KEY: ADMIN_KEY });
  t.teardown(() => server.stop());
  const newShort = await greedyReference(modelB, hello, MAX);

  t.match(
    await call(server, 'POST', '/admin/model', { path: modelB, id: 'tiny-b' }),
    { status: 403, body: { error: { code: 'ERR_MODEL_PATH_FORBIDDEN' } } },
    'outside the models dir: refused by the worker',
  );
  const accepted = await call(server, 'POST', '/admin/model', { path: newModel, id: 'tiny-b' });
  t.equal(accepted.status, 202);
  t.match(accepted.body, { object: 'admin.model.swap', status: 'rolling_restart', model: { id: 'tiny-b', path: newModel }, previous: 'tiny' });
  await logged(server, (line) => line.msg === 'model swapped');
  const swaps = async (result: string): Promise<number | undefined> => sample(await (await fetch(`${server.url}/metrics`)).text(), 'semantic_fleet_model_swap_total', { result });
  t.same([await swaps('ok'), await swaps('rolled_back')], [1, 0], "the supervisor's count of fleet swaps");
  const models = await call(server, 'GET', '/v1/models', undefined, USER_KEY);
  t.same(
    models.body.data.map((m: { id: string }) => m.id),
    ['tiny-b'],
    'the replacement serves the new model',
  );
  const fresh = await chat(server, 'tiny-b', 'supervised');
  t.equal(fresh.body.choices[0].message.content, newShort.text);
  await persisted(server, 'supervised');
  const [modelDir] = readdirSync(join(dir, 'models'));
  t.same(readdirSync(join(dir, 'models', modelDir ?? '')), ['supervised.safetensors'], "the new workers keep their files in the new model's folder");
  t.notOk(existsSync(join(dir, 'supervised.safetensors')), "the top of the dir stays the original model's");

  const truncated = join(modelsDir, 'truncated.gguf');
  writeFileSync(truncated, readFileSync(modelA).subarray(0, 4096));
  t.equal((await call(server, 'POST', '/admin/model', { path: truncated, id: 'broken' })).status, 202, 'the file looks like a GGUF: the supervisor tries');
  await logged(server, (line) => line.msg === 'model swap failed: back to the old model');
  t.equal(await swaps('rolled_back'), 1, 'the failed swap counted');
  t.ok(
    server.logs.some((line) => typeof line.msg === 'string' && line.msg.startsWith('rolling restart aborted')),
    'its replacement never got ready',
  );
  t.same(
    (await call(server, 'GET', '/v1/models', undefined, USER_KEY)).body.data.map((m: { id: string }) => m.id),
    ['tiny-b'],
    'the old worker keeps serving',
  );
  t.equal((await chat(server, 'tiny-b', 'supervised')).status, 200);
  t.match(
    await call(server, 'POST', '/admin/model', { path: join(modelsDir, 'missing.gguf') }),
    { status: 400, body: { error: { param: 'path' } } },
    'checked by the worker first',
  );
  t.match(
    await call(server, 'POST', '/admin/model', { path: modelA }),
    { status: 403, body: { error: { code: 'ERR_MODEL_PATH_FORBIDDEN' } } },
    "the models dir stayed the first model's folder after the swap",
  );
});
