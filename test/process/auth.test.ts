// API keys and rate limits on a real server, through the official `openai` client where a client
// would meet them: no key, a wrong key, a user key, the admin key on an admin route, public probes,
// and 429 + Retry-After per key and per agent, recovering once the bucket refills.
import t from 'tap';
import OpenAI from 'openai';
import { tinyModelPath } from '../helpers/model.js';
import { startServer, type RunningServer } from '../helpers/server.js';

const modelPath = await tinyModelPath();
/** What a call that must fail rejected with (the SDK's typed error). */
const failure = (call: Promise<unknown>): Promise<unknown> =>
  call.then(
    () => 'resolved',
    (error: unknown) => error,
  );
const [USER_KEY, OTHER_KEY, ADMIN_KEY] = ['user-key-0001', 'user-key-0002', 'admin-key-0001'];

async function serve(flags: string[]): Promise<RunningServer> {
  const server = await startServer(['serve', '--port', '0', '--model', modelPath, '--model-id', 'tiny', '--threads', '1', ...flags], 'ready', {
    SEMANTIC_API_KEYS: `${USER_KEY},${OTHER_KEY}`,
    SEMANTIC_ADMIN_KEY: ADMIN_KEY,
  });
  t.teardown(() => server.stop());
  return server;
}

const clientOf = (server: RunningServer, apiKey: string): OpenAI => new OpenAI({ baseURL: `${server.url}/v1`, apiKey, maxRetries: 0 });
const ask = (client: OpenAI, user?: string) =>
  client.chat.completions.create({ model: 'tiny', messages: [{ role: 'user', content: 'hi' }], max_tokens: 2, ...(user === undefined ? {} : { user }) });

async function get(server: RunningServer, path: string, key?: string): Promise<number> {
  const response = await fetch(server.url + path, { headers: key === undefined ? {} : { 'x-api-key': key } });
  await response.arrayBuffer();
  return response.status;
}

t.test('keys: none or a wrong one is 401, a user key serves, admin routes need the admin key', async (t) => {
  const server = await serve([]);
  const noKey = await fetch(`${server.url}/v1/models`);
  t.equal(noKey.status, 401);
  t.match(await noKey.json(), { error: { code: 'ERR_UNAUTHORIZED', type: 'invalid_request_error' } });
  t.match(await failure(ask(clientOf(server, 'wrong-key-0000'))), { status: 401, error: { code: 'ERR_UNAUTHORIZED' } });
  t.match(await ask(clientOf(server, USER_KEY)), { object: 'chat.completion' }, 'Authorization: Bearer with a user key');
  t.equal(await get(server, '/v1/models', OTHER_KEY), 200, 'x-api-key with the other user key');
  t.equal(await get(server, '/debug/engine', USER_KEY), 403, 'a user key on an admin route');
  t.equal(await get(server, '/debug/engine'), 401, 'no key on an admin route');
  t.equal(await get(server, '/debug/engine', ADMIN_KEY), 200, 'the admin key');
  t.equal(await get(server, '/v1/models', ADMIN_KEY), 200, 'the admin key passes where a user key does');
  for (const probe of ['/health/live', '/health/startup', '/health/ready']) t.equal(await get(server, probe), 200, `${probe} is public`);
});

t.test('per-key limit: 429 with Retry-After past the burst, served again once the bucket refills', async (t) => {
  const server = await serve(['--rate-limit-per-key', '60', '--rate-limit-burst', '2']);
  const client = clientOf(server, USER_KEY);
  await ask(client);
  await ask(client);
  const limited = await ask(client).catch((error: unknown) => error);
  t.ok(limited instanceof OpenAI.RateLimitError, 'the third request at once: a RateLimitError (429)');
  t.match(limited, { error: { code: 'ERR_RATE_LIMITED' } });
  const retryAfter = Number((limited as InstanceType<typeof OpenAI.RateLimitError>).headers?.get('retry-after'));
  t.equal(retryAfter, 1, 'one request a second: retry after 1 s');
  t.match(await ask(clientOf(server, OTHER_KEY)), { object: 'chat.completion' }, 'another key has its own bucket');
  await new Promise((resolve) => setTimeout(resolve, retryAfter * 1000)); // what Retry-After tells a client to do
  t.match(await ask(client), { object: 'chat.completion' }, 'served again after Retry-After');
  t.equal(await get(server, '/health/ready'), 200, 'probes are never limited');
});

t.test('per-agent limit: one agent is limited, another agent of the same key is not', async (t) => {
  const server = await serve(['--rate-limit-per-agent', '60', '--rate-limit-burst', '1']);
  const client = clientOf(server, USER_KEY);
  await ask(client, 'busy-agent');
  t.match(await failure(ask(client, 'busy-agent')), { status: 429, error: { code: 'ERR_RATE_LIMITED' } });
  t.match(await ask(client, 'calm-agent'), { object: 'chat.completion' });
});
