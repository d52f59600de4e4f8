// Every generation route tells the client which agent the server filed its turn under
// (`X-Semantic-Agent-ID`), JSON and streamed alike: the id the client named, the id the server derived
// from a stateless client's conversation, a stored Responses chain's own id. A stateless client that
// sends the derived id back as X-Agent-ID is the same agent: its next turn reads its cache, which is
// what lets a consistent-hash proxy route it (ops/nginx/semantic.conf).
import t from 'tap';
import { conversationAgentId } from '../../shared/agent-id.js';
import { tinyModelPath } from '../helpers/model.js';
import { startServer } from '../helpers/server.js';
import { readSseData } from '../helpers/sse.js';

const modelPath = await tinyModelPath();
const server = await startServer(['serve', '--port', '0', '--model', modelPath, '--model-id', 'tiny', '--threads', '1', '--context-size', '1024']);
t.teardown(() => server.stop());

const user = (content: string): { role: string; content: string } => ({ role: 'user', content });

interface Route {
  path: string;
  body: (stream: boolean) => Record<string, unknown>;
}

const routes: Route[] = [
  { path: '/v1/chat/completions', body: (stream) => ({ model: 'tiny', messages: [user('Hello')], max_tokens: 3, stream }) },
  { path: '/v1/completions', body: (stream) => ({ model: 'tiny', prompt: 'Once upon a time', max_tokens: 3, stream }) },
  { path: '/v1/responses', body: (stream) => ({ model: 'tiny', input: 'Hello', max_output_tokens: 3, stream }) },
  { path: '/v1/messages', body: (stream) => ({ model: 'tiny', messages: [user('Hello')], max_tokens: 3, stream }) },
];

async function post(path: string, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; agent: string | null; text: string }> {
  const response = await fetch(`${server.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
  const agent = response.headers.get('x-semantic-agent-id');
  const text = response.headers.get('content-type')?.startsWith('text/event-stream') === true ? (await readSseData(response)).join('\n') : await response.text();
  return { status: response.status, agent, text };
}

for (const route of routes) {
  for (const stream of [false, true]) {
    t.test(`${route.path}${stream ? ' (streamed)' : ''}: the header is the X-Agent-ID sent`, async (t) => {
      const id = `named-${route.path.split('/').pop()}-${stream ? 'sse' : 'json'}`;
      const { status, agent, text } = await post(route.path, route.body(stream), { 'x-agent-id': id });
      t.equal(status, 200, text);
      t.equal(agent, id);
    });
  }
}

t.test('a stored Responses turn with no id names its agent by the response id', async (t) => {
  const { status, agent, text } = await post('/v1/responses', { model: 'tiny', input: 'Remember this.', max_output_tokens: 2 });
  t.equal(status, 200, text);
  t.equal(agent, (JSON.parse(text) as { id: string }).id);
});

t.test('a stateless client gets the derived id, and sending it back reads its cache', async (t) => {
  const opening = [{ role: 'system', content: 'You are a terse assistant.' }, user('Name three prime numbers and nothing else, please.')];
  const derived = conversationAgentId(opening);
  const first = await post('/v1/chat/completions', { model: 'tiny', messages: opening, max_tokens: 4, temperature: 0 });
  t.equal(first.status, 200, first.text);
  t.equal(first.agent, derived, 'conv- + the hash of the opening');
  t.match(derived, /^conv-[0-9a-f]{16}$/);

  const answer = (JSON.parse(first.text) as { choices: { message: { content: string } }[] }).choices[0]?.message.content ?? '';
  const next = [...opening, { role: 'assistant', content: answer }, user('And two more.')];
  const response = await fetch(`${server.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-agent-id': derived },
    body: JSON.stringify({ model: 'tiny', messages: next, max_tokens: 4, temperature: 0 }),
  });
  const body = (await response.json()) as { usage: { prompt_tokens_details: { cached_tokens: number } } };
  t.equal(response.status, 200);
  t.equal(response.headers.get('x-semantic-agent-id'), derived);
  t.equal(response.headers.get('x-semantic-cache'), 'hot', "the derived agent's cells, still in the context");
  t.ok(body.usage.prompt_tokens_details.cached_tokens > 0, `${body.usage.prompt_tokens_details.cached_tokens} prompt tokens read from the cache`);
});

t.test('the Anthropic family derives the same way', async (t) => {
  const messages = [user('A different opening for the Anthropic route.')];
  const { status, agent, text } = await post('/v1/messages', { model: 'tiny', messages, max_tokens: 2 });
  t.equal(status, 200, text);
  t.equal(agent, conversationAgentId(messages));
});
