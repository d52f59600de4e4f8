// The hot tier end to end: an agent's second turn reuses the cells its first turn left in the
// context (longest common prefix of tokens), prefills only the rest, says so in headers and usage,
// and produces exactly the tokens a cold run of the full prompt produces.
import t from 'tap';
import { cachedAfter, expectedReuse, greedyReference } from '../helpers/greedy.js';
import { tinyModelPath } from '../helpers/model.js';
import { startServer, type RunningServer } from '../helpers/server.js';
import type { ChatMessage } from '../../shared/protocol/messages.js';

const modelPath = await tinyModelPath();
const MAX = 12;

async function serve(maxSequences: number, ramCacheBytes = 64 * 1024 * 1024): Promise<RunningServer> {
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
    '2048',
    '--max-sequences',
    String(maxSequences),
    '--ram-cache-bytes',
    String(ramCacheBytes),
  ]);
  t.teardown(() => server.stop());
  return server;
}

interface Turn {
  text: string;
  tier: string | null;
  computed: number;
  usage: { prompt_tokens: number; completion_tokens: number; prompt_tokens_details: { cached_tokens: number } };
}

async function turn(server: RunningServer, agent: string, messages: ChatMessage[]): Promise<Turn> {
  const response = await fetch(`${server.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-agent-id': agent },
    body: JSON.stringify({ model: 'tiny', messages, max_tokens: MAX, temperature: 0 }),
  });
  const body = (await response.json()) as { choices: { message: { content: string } }[]; usage: Turn['usage'] };
  return {
    text: body.choices[0]?.message.content ?? '',
    tier: response.headers.get('x-semantic-cache'),
    computed: Number(response.headers.get('x-semantic-prompt-tokens-computed')),
    usage: body.usage,
  };
}

const opening: ChatMessage[] = [
  { role: 'system', content: 'You plan trips.' },
  { role: 'user', content: 'Plan a trip to Peru.' },
];

t.test('second turn: hot tier, only the new suffix computed, output equal to a cold run', async (t) => {
  const server = await serve(4);
  const cold1 = await greedyReference(modelPath, opening, MAX);
  const first = await turn(server, 'alice', opening);
  t.equal(first.tier, 'miss');
  t.equal(first.computed, cold1.promptTokens);
  t.equal(first.text, cold1.text);

  const second: ChatMessage[] = [...opening, { role: 'assistant', content: first.text }, { role: 'user', content: 'And after Cusco?' }];
  const cold2 = await greedyReference(modelPath, second, MAX);
  const reuse = expectedReuse(cachedAfter(cold1), cold2);
  t.ok(reuse >= cold1.promptTokens - 1, `reuses at least the first prompt (${reuse} tokens)`);
  const warm = await turn(server, 'alice', second);
  t.equal(warm.tier, 'hot');
  t.equal(warm.usage.prompt_tokens_details.cached_tokens, reuse, 'cached_tokens = tokens actually reused');
  t.equal(warm.computed, cold2.promptTokens - reuse, 'only the suffix was computed');
  t.equal(warm.usage.prompt_tokens, cold2.promptTokens);
  t.equal(warm.text, cold2.text, 'warm output equals cold output token for token');

  // Divergence: same opening, a different assistant reply: only the common prefix is reused.
  const third: ChatMessage[] = [...opening, { role: 'assistant', content: 'Lima first.' }, { role: 'user', content: 'Why?' }];
  const cold3 = await greedyReference(modelPath, third, MAX);
  const divergent = await turn(server, 'alice', third);
  const reuse3 = expectedReuse(cachedAfter(cold2), cold3);
  t.ok(reuse3 < cold3.promptTokens - 1, 'the histories diverge before the end');
  t.equal(divergent.tier, 'hot');
  t.equal(divergent.usage.prompt_tokens_details.cached_tokens, reuse3, 'exactly the common prefix is reused');
  t.equal(divergent.text, cold3.text);
});

t.test("agents interleaving turns never see each other's cache", async (t) => {
  const server = await serve(4);
  const bobOpening: ChatMessage[] = [{ role: 'user', content: 'Write a haiku about rain.' }];
  const aliceCold = await greedyReference(modelPath, opening, MAX);
  const bobCold = await greedyReference(modelPath, bobOpening, MAX);
  const a1 = await turn(server, 'alice', opening);
  const b1 = await turn(server, 'bob', bobOpening);
  t.equal(b1.tier, 'miss', "bob's first turn does not reuse alice's cells");
  t.equal(b1.text, bobCold.text);
  const aliceNext: ChatMessage[] = [...opening, { role: 'assistant', content: a1.text }, { role: 'user', content: 'Shorter.' }];
  const bobNext: ChatMessage[] = [...bobOpening, { role: 'assistant', content: b1.text }, { role: 'user', content: 'Another.' }];
  const [aliceCold2, bobCold2] = [await greedyReference(modelPath, aliceNext, MAX), await greedyReference(modelPath, bobNext, MAX)];
  const [a2, b2] = await Promise.all([turn(server, 'alice', aliceNext), turn(server, 'bob', bobNext)]);
  t.equal(a2.text, aliceCold2.text);
  t.equal(b2.text, bobCold2.text);
  t.equal(a2.usage.prompt_tokens_details.cached_tokens, expectedReuse(cachedAfter(aliceCold), aliceCold2));
  t.equal(b2.usage.prompt_tokens_details.cached_tokens, expectedReuse(cachedAfter(bobCold), bobCold2));
});

const talk = (agent: string): ChatMessage[] => [{ role: 'user', content: `Hello from ${agent}.` }];

t.test('with every sequence taken, the least recently used idle agent moves to RAM and comes back from there', async (t) => {
  const server = await serve(2);
  const coldA = await greedyReference(modelPath, talk('a'), MAX);
  await turn(server, 'a', talk('a'));
  await turn(server, 'b', talk('b'));
  const c = await turn(server, 'c', talk('c'));
  t.equal(c.tier, 'miss');
  t.equal(c.text, (await greedyReference(modelPath, talk('c'), MAX)).text, 'served after moving an idle agent out');
  const b = await turn(server, 'b', talk('b'));
  t.equal(b.tier, 'hot', 'b was used more recently than a, so it stayed in the context');
  const again = await turn(server, 'a', talk('a'));
  t.equal(again.tier, 'ram', 'a was exported to the RAM tier');
  t.equal(again.usage.prompt_tokens_details.cached_tokens, coldA.promptTokens - 1, 'the whole prompt but its last token is restored');
  t.equal(again.computed, 1);
  t.equal(again.text, coldA.text, 'output after a RAM restore equals the cold output');

  const next: ChatMessage[] = [...talk('a'), { role: 'assistant', content: again.text }, { role: 'user', content: 'Go on.' }];
  const coldNext = await greedyReference(modelPath, next, MAX);
  await turn(server, 'd', talk('d'));
  await turn(server, 'e', talk('e'));
  const later = await turn(server, 'a', next);
  t.equal(later.tier, 'ram');
  t.equal(later.usage.prompt_tokens_details.cached_tokens, expectedReuse(cachedAfter(coldA), coldNext), 'a longer conversation reuses its common prefix');
  t.equal(later.text, coldNext.text);
});

t.test('without a RAM tier an evicted agent comes back from its disk file', async (t) => {
  const server = await serve(2, 0);
  const coldA = await greedyReference(modelPath, talk('a'), MAX);
  await turn(server, 'a', talk('a'));
  await turn(server, 'b', talk('b'));
  await turn(server, 'c', talk('c'));
  const a = await turn(server, 'a', talk('a'));
  t.equal(a.tier, 'disk');
  t.equal(a.usage.prompt_tokens_details.cached_tokens, coldA.promptTokens - 1);
  t.equal(a.text, coldA.text);
});
