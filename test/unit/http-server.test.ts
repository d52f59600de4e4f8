// The real HTTP front (node:http on loopback, an ephemeral port) in front of the fake inference thread:
// routing errors in the OpenAI shape, request ids, body limits, JSON and streamed completions, and an
// engine abort the moment a streaming client disconnects. Waits are on events (responses, log
// lines), never on sleeps.
import t from 'tap';
import { pino } from 'pino';
import { SemanticError } from '../../shared/errors.js';
import { houseErrorBody as openAIErrorBody } from '../../worker/http/error-body.js';
import { createRouter, type Route } from '../../worker/http/router.js';
import { createHttpServer } from '../../worker/http/http-server.js';
import { connect, type Socket } from 'node:net';
import { parseResponses, sendRaw, type RawResponse } from '../helpers/raw-http.js';
import { fakeInferenceOptions } from '../helpers/fake-inference-options.js';
import { startWorkerServer, type WorkerServer } from '../../worker/process/start.js';

const fakeThread = new URL('../fixtures/fake-inference-thread.mjs', import.meta.url);
type LogLine = Record<string, unknown>;

/** A pino destination that keeps every line and lets a test wait for one. */
class LogCapture {
  readonly lines: LogLine[] = [];
  private waiters: { match: (line: LogLine) => boolean; resolve: (line: LogLine) => void }[] = [];
  write(text: string): void {
    const line = JSON.parse(text) as LogLine;
    this.lines.push(line);
    this.waiters = this.waiters.filter((waiter) => !(waiter.match(line) && (waiter.resolve(line), true)));
  }
  waitFor(match: (line: LogLine) => boolean): Promise<LogLine> {
    const seen = this.lines.find(match);
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise((resolve) => this.waiters.push({ match, resolve }));
  }
}

const inference = fakeInferenceOptions;

async function start(modelPath: string, logs = new LogCapture()): Promise<{ server: WorkerServer; url: string; logs: LogCapture }> {
  const logger = pino({ level: 'info' }, logs);
  const server = await startWorkerServer({
    host: '127.0.0.1',
    port: 0,
    maxBodyBytes: 1024,
    readyMaxPoolPercent: 90,
    inference: inference(modelPath),
    logger,
    inferenceThreadUrl: fakeThread,
  });
  t.teardown(() => server.close());
  return { server, url: `http://127.0.0.1:${server.port}`, logs };
}

const chatUrl = (url: string): string => `${url}/v1/chat/completions`;

function postJson(url: string, body: unknown, headers: Record<string, string> = {}, signal?: AbortSignal): Promise<Response> {
  return fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body), ...(signal ? { signal } : {}) });
}

function chatBody(content: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { model: 'fake-model', messages: [{ role: 'user', content }], ...extra };
}

/** `data:` payloads of an SSE body, in order. */
function sseData(text: string): string[] {
  return text
    .split('\n\n')
    .filter((event) => event !== '')
    .map((event) =>
      event
        .split('\n')
        .filter((line) => line.startsWith('data: '))
        .map((line) => line.slice(6))
        .join('\n'),
    );
}

const { server, url, logs } = await start('fake://ready');
await server.ready;

t.test('GET /health/live answers with ids and timing headers, and one log line', async (t) => {
  const res = await fetch(`${url}/health/live`);
  t.equal(res.status, 200);
  t.same(await res.json(), { status: 'alive' });
  t.match(res.headers.get('content-type'), /^application\/json/);
  const requestId = res.headers.get('x-request-id') ?? '';
  t.match(requestId, /^[0-9a-f-]{36}$/);
  t.match(res.headers.get('x-response-time'), /^\d+(\.\d+)?ms$/);
  const line = await logs.waitFor((l) => l.requestId === requestId && l.msg === 'request');
  t.match(line, { method: 'GET', route: '/health/live', status: 200, aborted: false, durationMs: Number });
});

t.test('X-Request-ID is echoed when valid and replaced when not', async (t) => {
  const echo = await fetch(`${url}/health/live`, { headers: { 'x-request-id': 'agent-7.turn:3_a' } });
  t.equal(echo.headers.get('x-request-id'), 'agent-7.turn:3_a');
  for (const bad of ['has space', 'x'.repeat(129), 'semi;colon']) {
    const res = await fetch(`${url}/health/live`, { headers: { 'x-request-id': bad } });
    t.match(res.headers.get('x-request-id'), /^[0-9a-f-]{36}$/, bad.slice(0, 20));
  }
});

t.test('unknown paths are 404 and wrong methods 405, in the OpenAI error shape', async (t) => {
  const missing = await fetch(`${url}/nope`);
  t.equal(missing.status, 404);
  t.ok(missing.headers.get('x-request-id'));
  t.same(await missing.json(), { error: { message: 'No route for GET /nope.', type: 'invalid_request_error', param: null, code: 'ERR_NOT_FOUND' } });
  const wrong = await fetch(chatUrl(url));
  t.equal(wrong.status, 405);
  t.equal(wrong.headers.get('allow'), 'POST');
  t.match(await wrong.json(), { error: { type: 'invalid_request_error', code: 'ERR_METHOD_NOT_ALLOWED', param: null } });
});

t.test('bodies over the limit are 413, whether declared or streamed', async (t) => {
  const json = { 'content-type': 'application/json' };
  const declared = await fetch(chatUrl(url), { method: 'POST', headers: json, body: 'x'.repeat(2000) });
  t.equal(declared.status, 413);
  t.match(await declared.json(), { error: { code: 'ERR_BODY_TOO_LARGE', type: 'invalid_request_error' } });
  const chunks = [new Uint8Array(800), new Uint8Array(800)];
  const stream = new ReadableStream<Uint8Array>({
    pull(controller) {
      const next = chunks.shift();
      if (next === undefined) controller.close();
      else controller.enqueue(next);
    },
  });
  const streamed = await fetch(chatUrl(url), { method: 'POST', headers: json, body: stream, duplex: 'half' } as RequestInit);
  t.equal(streamed.status, 413);
  t.match(await streamed.json(), { error: { code: 'ERR_BODY_TOO_LARGE' } });
  t.equal((await fetch(`${url}/health/live`)).status, 200, 'the server goes on');
});

t.test('a body that does not say it is JSON is 415, whatever it holds', async (t) => {
  const body = JSON.stringify(chatBody('echo:hi'));
  for (const type of [undefined, 'text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/jsonx']) {
    const res = await fetch(chatUrl(url), { method: 'POST', body, headers: type === undefined ? {} : { 'content-type': type } });
    t.equal(res.status, 415, String(type));
    t.match(await res.json(), { error: { code: 'ERR_UNSUPPORTED_MEDIA_TYPE', type: 'invalid_request_error', message: /Content-Type: application\/json/ } }, String(type));
  }
  for (const type of ['application/json', 'Application/JSON; charset=utf-8', 'application/vnd.api+json']) {
    t.equal((await fetch(chatUrl(url), { method: 'POST', body, headers: { 'content-type': type } })).status, 200, type);
  }
});

t.test('malformed bodies are 400 ERR_INVALID_JSON', async (t) => {
  const bodies: [string, string | Uint8Array<ArrayBuffer>][] = [
    ['truncated JSON', '{"model": "fake-model", '],
    ['invalid UTF-8', Uint8Array.of(0x7b, 0x22, 0xff, 0x22, 0x7d)],
    ['empty', ''],
  ];
  for (const [name, body] of bodies) {
    const res = await fetch(chatUrl(url), { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    t.equal(res.status, 400, name);
    t.match(await res.json(), { error: { type: 'invalid_request_error', code: 'ERR_INVALID_JSON', param: null, message: String } }, name);
  }
});

t.test('schema violations are 400 naming the field; an unknown model is 404', async (t) => {
  const role = await postJson(chatUrl(url), { model: 'fake-model', messages: [{ role: 'bot', content: 'x' }] });
  t.equal(role.status, 400);
  t.match(await role.json(), { error: { code: 'ERR_BAD_REQUEST', param: 'messages.0.role' } });
  const n = await postJson(chatUrl(url), chatBody('x', { n: 2 }));
  t.match(await n.json(), { error: { code: 'ERR_BAD_REQUEST', param: 'n', message: "Invalid 'n': only n = 1 is supported" } });
  const model = await postJson(chatUrl(url), { ...chatBody('x'), model: 'gpt-4o' });
  t.equal(model.status, 404);
  t.match(await model.json(), { error: { code: 'ERR_MODEL_NOT_FOUND', param: 'model', type: 'invalid_request_error' } });
});

t.test('GET /v1/models lists the served model', async (t) => {
  const body = (await (await fetch(`${url}/v1/models`)).json()) as { data: { created: number }[] };
  t.match(body, { object: 'list', data: [{ id: 'fake-model', object: 'model', owned_by: 'semantic', created: Number }] });
  t.equal(body.data.length, 1);
});

t.test('a JSON completion carries the text, the finish reason and usage', async (t) => {
  const res = await postJson(chatUrl(url), chatBody('echo:Hello world'));
  t.equal(res.status, 200);
  const body = (await res.json()) as { id: string; created: number };
  t.match(body.id, /^chatcmpl-/);
  t.match(body, {
    object: 'chat.completion',
    model: 'fake-model',
    created: Number,
    choices: [{ index: 0, message: { role: 'assistant', content: 'Hello world' }, logprobs: null, finish_reason: 'stop' }],
    usage: { prompt_tokens: 7, completion_tokens: 2, total_tokens: 9, prompt_tokens_details: { cached_tokens: 2 } },
  });
});

t.test('the request id is the protocol requestId; sampling reaches the engine', async (t) => {
  const res = await postJson(chatUrl(url), chatBody('whoami', { temperature: 0, max_tokens: 5, stop: 'END' }), { 'x-request-id': 'trace-42' });
  t.equal(res.headers.get('x-request-id'), 'trace-42');
  const body = (await res.json()) as { choices: { message: { content: string } }[] };
  t.same(JSON.parse(body.choices[0]?.message.content ?? ''), {
    requestId: 'trace-42',
    sampling: { temperature: 0, topP: 1, topK: 0, minP: 0, repeatPenalty: 1, frequencyPenalty: 0, presencePenalty: 0 },
    maxTokens: 5,
    stop: ['END'],
  });
});

t.test('a streamed completion: role chunk, content, finish, usage, [DONE]', async (t) => {
  const res = await postJson(chatUrl(url), chatBody('echo:Hello world', { stream: true, stream_options: { include_usage: true } }));
  t.equal(res.status, 200);
  t.equal(res.headers.get('content-type'), 'text/event-stream');
  t.equal(res.headers.get('cache-control'), 'no-cache');
  t.ok(res.headers.get('x-request-id'));
  const data = sseData(await res.text());
  t.equal(data.at(-1), '[DONE]');
  const chunks = data.slice(0, -1).map((d) => JSON.parse(d) as { id: string; choices: unknown[]; usage?: unknown });
  t.equal(new Set(chunks.map((c) => c.id)).size, 1, 'one id for the whole stream');
  t.same(
    chunks.map((c) => c.choices),
    [
      [{ index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }],
      [{ index: 0, delta: { content: 'Hello' }, logprobs: null, finish_reason: null }],
      [{ index: 0, delta: { content: ' world' }, logprobs: null, finish_reason: null }],
      [{ index: 0, delta: {}, logprobs: null, finish_reason: 'stop' }],
      [],
    ],
  );
  t.same(chunks.at(-1)?.usage, { prompt_tokens: 7, completion_tokens: 2, total_tokens: 9, prompt_tokens_details: { cached_tokens: 2 } });
  t.match(chunks[0], { object: 'chat.completion.chunk', model: 'fake-model', created: Number });
});

t.test('without include_usage there is no usage chunk', async (t) => {
  const data = sseData(await (await postJson(chatUrl(url), chatBody('length', { stream: true }))).text());
  t.equal(data.length, 5);
  t.match(JSON.parse(data[3] ?? ''), { choices: [{ finish_reason: 'length' }] });
  t.notMatch(data.join(''), /usage/);
});

t.test('a refusal before the stream started keeps its status (429 + Retry-After)', async (t) => {
  const res = await postJson(chatUrl(url), chatBody('queue-full', { stream: true }));
  t.equal(res.status, 429);
  t.equal(res.headers.get('retry-after'), '1');
  t.match(await res.json(), { error: { code: 'ERR_QUEUE_FULL', type: 'rate_limit_error' } });
});

t.test('a failure mid-stream is an error event, then the stream ends', async (t) => {
  const data = sseData(await (await postJson(chatUrl(url), chatBody('fail-mid-stream', { stream: true }))).text());
  t.same(JSON.parse(data.at(-1) ?? ''), { error: { message: 'decode failed', type: 'server_error', param: null, code: 'ERR_INTERNAL' } });
  t.notOk(data.includes('[DONE]'));
});

t.test('a client that disconnects mid-stream aborts its generation at once', async (t) => {
  const before = await server.engine.stats();
  const controller = new AbortController();
  const res = await postJson(chatUrl(url), chatBody('hold', { stream: true }), { 'x-request-id': 'leaver' }, controller.signal);
  const reader = res.body!.getReader();
  const first = new TextDecoder().decode((await reader.read()).value);
  t.match(first, /"role":"assistant"/);
  controller.abort();
  await logs.waitFor((l) => l.requestId === 'leaver' && l.msg === 'request' && l.aborted === true);
  const after = await server.engine.stats();
  t.equal(after.steps - before.steps, 1, 'the fake engine received one abort');
  t.equal(after.activeSequences, 0, 'and freed the sequence');
});

t.test('before the model is ready: chat and models are 503, liveness is 200', async (t) => {
  const loading = await start('fake://never-ready');
  t.equal((await fetch(`${loading.url}/health/live`)).status, 200);
  const chat = await postJson(chatUrl(loading.url), chatBody('echo:hi'));
  t.equal(chat.status, 503);
  t.equal(chat.headers.get('retry-after'), '1');
  t.match(await chat.json(), { error: { code: 'ERR_NOT_READY', type: 'server_error' } });
  t.equal((await fetch(`${loading.url}/v1/models`)).status, 503);
});

t.test('request bodies held at once are bounded: past the budget a body gets 429, and the budget comes back', async (t) => {
  const logger = pino({ level: 'silent' });
  const echo: Route = { method: 'POST', path: '/echo', errorShape: openAIErrorBody, handle: async (c) => c.sendJson(200, await c.readJson()) };
  const http = createHttpServer({
    maxBodyBytes: 800,
    bodyBudgetBytes: 1000,
    onInternalError: () => undefined,
    protocolErrorBody: (error) => JSON.stringify(openAIErrorBody(error)),
  });
  http.handle(createRouter({ routes: [echo], fallbackErrorShape: openAIErrorBody, logger }).handle);
  const port = await http.listen('127.0.0.1', 0);
  t.teardown(() => http.close());
  const head = (length: number): string => `POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${length}\r\n\r\n`;
  const body = `"${'a'.repeat(598)}"`;
  // The first client sends all but the last byte of its 600 and holds: 599 bytes of the budget taken.
  const slow = connect({ host: '127.0.0.1', port });
  await new Promise((resolve) => slow.once('connect', resolve));
  const slowAnswer = sendRawOn(slow);
  slow.write(head(600) + body.slice(0, 599));
  const refused = await sendRaw(port, [head(600) + body], { responses: 1 });
  t.equal(refused.responses[0]?.status, 429, 'a second 600-byte body does not fit in the 1,000-byte budget');
  t.match(JSON.parse(refused.responses[0]?.body ?? '{}'), { error: { code: 'ERR_QUEUE_FULL' } });
  t.equal(refused.responses[0]?.headers['retry-after'], '1');
  slow.write(body.slice(599));
  t.equal((await slowAnswer)[0]?.status, 200, 'the held body completes');
  const later = await sendRaw(port, [head(600) + body], { responses: 1 });
  t.equal(later.responses[0]?.status, 200, 'and its bytes are back in the budget');
  t.equal(later.responses[0]?.body, body);
});

/** Resolves with the responses read on `socket` once one is complete. */
function sendRawOn(socket: Socket): Promise<RawResponse[]> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      const responses = parseResponses(Buffer.concat(chunks));
      if (responses.length > 0) {
        socket.destroy();
        resolve(responses);
      }
    });
  });
}

t.test('whatever a handler throws becomes a logged 500 in the route shape, never a crash', async (t) => {
  const capture = new LogCapture();
  const logger = pino({ level: 'info' }, capture);
  const routes: Route[] = [
    {
      method: 'GET',
      path: '/sync',
      errorShape: openAIErrorBody,
      handle: () => {
        throw new TypeError('x is undefined');
      },
    },
    { method: 'GET', path: '/async', errorShape: openAIErrorBody, handle: async () => Promise.reject(new Error('late')) },
    {
      method: 'GET',
      path: '/busy',
      errorShape: openAIErrorBody,
      handle: () => {
        throw new SemanticError('ERR_QUEUE_FULL', 'busy', { retryAfter: 2.5 });
      },
    },
    { method: 'GET', path: '/agents/:id', errorShape: openAIErrorBody, handle: (c) => c.sendJson(200, c.params) },
  ];
  const http = createHttpServer({
    maxBodyBytes: 64,
    onInternalError: (error) => logger.error({ err: error }, 'uncaught'),
    protocolErrorBody: (error) => JSON.stringify(openAIErrorBody(error)),
  });
  http.handle(createRouter({ routes, fallbackErrorShape: openAIErrorBody, logger }).handle);
  const port = await http.listen('127.0.0.1', 0);
  t.teardown(() => http.close());
  const base = `http://127.0.0.1:${port}`;
  for (const path of ['/sync', '/async']) {
    const res = await fetch(base + path, { headers: { 'x-request-id': `crash${path.replace('/', '-')}` } });
    t.equal(res.status, 500, path);
    t.same(await res.json(), {
      error: { message: `Internal error; it was logged with request id crash${path.replace('/', '-')}.`, type: 'server_error', param: null, code: 'ERR_INTERNAL' },
    });
  }
  t.equal(capture.lines.filter((l) => l.msg === 'internal error (a bug)').length, 2, 'each 500 is logged as a bug');
  const busy = await fetch(`${base}/busy`);
  t.equal(busy.status, 429);
  t.equal(busy.headers.get('retry-after'), '3');
  t.same(await (await fetch(`${base}/agents/a-1`)).json(), { id: 'a-1' });
  t.equal((await fetch(`${base}/agents/`)).status, 404);
});
