// Streaming at high concurrency against a real server: 256 SSE clients at once on 64 sequences.
// Every stream either completes with the cold greedy output, or is refused with a 429 and
// Retry-After before any event is sent; none fails, none is cut. The liveness probe answers
// throughout. (How fast it answers is measured by `npm run bench:sse`, not asserted here.)
import t from 'tap';
import { greedyReference, type GreedyReference } from '../helpers/greedy.js';
import { tinyModelPath } from '../helpers/model.js';
import { readSseData } from '../helpers/sse.js';
import { startServer } from '../helpers/server.js';
import type { ChatMessage } from '../../shared/protocol/messages.js';

const modelPath = await tinyModelPath();
const CLIENTS = 256;
const SEQUENCES = 64;
const QUEUED = 64;
const MAX = 8;
const PROMPTS = 8;
const conversation = (i: number): ChatMessage[] => [{ role: 'user', content: `Name a colour, client group ${i % PROMPTS}.` }];
const cold: GreedyReference[] = [];
for (let i = 0; i < PROMPTS; i++) cold.push(await greedyReference(modelPath, conversation(i), MAX));

const server = await startServer([
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
  '8192',
  '--max-sequences',
  String(SEQUENCES),
  '--max-queued',
  String(QUEUED),
]);
t.teardown(() => server.stop());

type Outcome =
  { kind: 'stream'; client: number; text: string; finish: unknown; done: boolean } | { kind: 'refused'; retryAfter: string | null; code: unknown; contentType: string | null };

async function stream(client: number): Promise<Outcome> {
  const response = await fetch(`${server.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'tiny', messages: conversation(client), max_tokens: MAX, temperature: 0, stream: true }),
  });
  if (response.status === 429) {
    const body = (await response.json()) as { error?: { code?: unknown } };
    return { kind: 'refused', retryAfter: response.headers.get('retry-after'), code: body.error?.code, contentType: response.headers.get('content-type') };
  }
  if (response.status !== 200) throw new Error(`client ${client}: ${response.status} ${await response.text()}`);
  const events = await readSseData(response);
  const chunks = events.filter((data) => data !== '[DONE]').map((data) => JSON.parse(data) as { choices: { delta?: { content?: string }; finish_reason?: unknown }[] });
  const text = chunks.map((chunk) => chunk.choices[0]?.delta?.content ?? '').join('');
  const finish = chunks.map((chunk) => chunk.choices[0]?.finish_reason).find((reason) => reason !== null && reason !== undefined);
  return { kind: 'stream', client, text, finish, done: events.at(-1) === '[DONE]' };
}

t.test(`${CLIENTS} streams on ${SEQUENCES} sequences: each completes, or is refused before it starts`, async (t) => {
  let loading = true;
  const probes: number[] = [];
  const probing = (async () => {
    while (loading && probes.length < 1000) probes.push((await fetch(`${server.url}/health/live`)).status);
  })();
  const outcomes = await Promise.all(Array.from({ length: CLIENTS }, (_, client) => stream(client)));
  loading = false;
  await probing;

  const streams = outcomes.filter((o) => o.kind === 'stream');
  const refused = outcomes.filter((o) => o.kind === 'refused');
  t.equal(streams.length + refused.length, CLIENTS, 'every client got a stream or a 429: no other status');
  t.ok(streams.length >= SEQUENCES + QUEUED, `${streams.length} streams completed (at least the sequences and the queue)`);
  const wrongStreams = streams.filter((s) => s.text !== (cold[s.client % PROMPTS] as GreedyReference).text || !s.done || s.finish === undefined);
  t.same(wrongStreams, [], 'every completed stream ended with [DONE] and a finish reason, its text the cold greedy output');
  const wrongRefusals = refused.filter((r) => !(Number(r.retryAfter) >= 1) || r.code !== 'ERR_QUEUE_FULL' || !String(r.contentType).startsWith('application/json'));
  t.same(wrongRefusals, [], `${refused.length} refusals, each a JSON 429 with Retry-After before any event`);
  t.ok(probes.length > 0, `${probes.length} liveness probes during the load`);
  t.same(new Set(probes), new Set([200]), 'the liveness probe answered 200 throughout');

  const stats = (await (await fetch(`${server.url}/debug/engine`)).json()) as { activeSequences: number; queuedRequests: number };
  t.match(stats, { activeSequences: 0, queuedRequests: 0 }, 'nothing left running or waiting');
});
