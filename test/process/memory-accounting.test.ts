// One truth about memory, against a real server: the RAM tier's bytes are the same in /debug/engine,
// /v1/agents/stats and /metrics, count the logits rows kept, and stay within --ram-cache-bytes. A
// logits row rides with a state only when it is no bigger than the state. A one-shot turn (no agent
// id, its conversation never came back) is not written to disk unless it is long; its conversation's
// next turn is.
import t from 'tap';
import { mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tinyModelPath } from '../helpers/model.js';
import { logged, persisted, serveOneSequence, type RunningServer } from '../helpers/server.js';
import { readGgufMetadata } from '../../shared/gguf/reader.js';
import { ONE_SHOT_WRITE_TOKENS } from '../../worker/engine/kv/write-behind.js';
import type { ChatMessage } from '../../shared/protocol/messages.js';

const modelPath = await tinyModelPath();
const vocabulary = (await readGgufMetadata(modelPath)).get('tokenizer.ggml.tokens');
const ROW_BYTES = (vocabulary?.type === 9 ? vocabulary.value.length : 0) * 4; // one float per token
const freshDir = (): string => mkdtempSync(join(tmpdir(), 'semantic-memory-'));

const serve = (cacheDir: string, ramCacheBytes: number): Promise<RunningServer> => serveOneSequence(t, modelPath, { contextSize: 8192, ramCacheBytes, cacheDir });

/** About `words` tokens of text that differ per `seed`. */
const filler = (seed: string, words: number): string => Array.from({ length: words }, (_, i) => `${seed}${i % 97}`).join(' ');
const short = (who: string): ChatMessage[] => [{ role: 'user', content: `Hello from ${who}.` }];
const long = (who: string): ChatMessage[] => [{ role: 'user', content: `${who}: ${filler('w', 1400)}` }];

async function chat(server: RunningServer, messages: ChatMessage[], agent?: string): Promise<{ cache: string | null; computed: number; promptTokens: number; text: string }> {
  const response = await fetch(`${server.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(agent === undefined ? {} : { 'x-agent-id': agent }) },
    body: JSON.stringify({ model: 'tiny', messages, max_tokens: 4, temperature: 0 }),
  });
  const body = (await response.json()) as { usage: { prompt_tokens: number }; choices: { message: { content: string } }[] };
  if (response.status !== 200) throw new Error(`chat: ${response.status} ${JSON.stringify(body)}`);
  return {
    cache: response.headers.get('x-semantic-cache'),
    computed: Number(response.headers.get('x-semantic-prompt-tokens-computed')),
    promptTokens: body.usage.prompt_tokens,
    text: body.choices[0]?.message.content ?? '',
  };
}

async function bytesOf(server: RunningServer, agent: string): Promise<{ tier: string; bytes: number }> {
  return (await (await fetch(`${server.url}/v1/agents/${agent}`)).json()) as { tier: string; bytes: number };
}

/** The RAM tier's bytes as each of the three reports them. */
async function ramBytes(server: RunningServer): Promise<{ agentsApi: number; engine: number; metrics: number }> {
  const stats = (await (await fetch(`${server.url}/v1/agents/stats`)).json()) as { ram: { bytes: number } };
  const engine = (await (await fetch(`${server.url}/debug/engine`)).json()) as { ramBytes: number };
  const exposition = await (await fetch(`${server.url}/metrics`)).text();
  const line = /^semantic_memory_used_bytes\{kind="ram_tier"\} (\d+)$/m.exec(exposition);
  return { agentsApi: stats.ram.bytes, engine: engine.ramBytes, metrics: Number(line?.[1] ?? NaN) };
}

const same = (bytes: number): { agentsApi: number; engine: number; metrics: number } => ({ agentsApi: bytes, engine: bytes, metrics: bytes });

/** Hot bytes (the state alone) of a short and a long agent, each measured while it is hot. */
let sizes: { short: number; long: number } | undefined;

t.test('RAM bytes: one figure in three places, logits rows only beside states at least as big', async (t) => {
  t.ok(ROW_BYTES > 0, `a logits row is ${ROW_BYTES} bytes`);
  const server = await serve(freshDir(), 64 * 1024 * 1024);
  const cold = await chat(server, short('s'), 's');
  const hotShort = await bytesOf(server, 's');
  t.equal(hotShort.tier, 'hot');
  t.ok(hotShort.bytes < ROW_BYTES, 'a short state is smaller than its logits row');
  await chat(server, long('l'), 'l');
  const hotLong = await bytesOf(server, 'l');
  t.equal(hotLong.tier, 'hot');
  t.ok(hotLong.bytes > ROW_BYTES, `a ${hotLong.bytes}-byte state is bigger than its logits row`);
  t.match(await bytesOf(server, 's'), { tier: 'ram', bytes: hotShort.bytes }, 'in RAM: the short state without its row');
  await chat(server, short('o'), 'o');
  t.match(await bytesOf(server, 'l'), { tier: 'ram', bytes: hotLong.bytes + ROW_BYTES }, 'in RAM: the long state with its row');
  t.same(await ramBytes(server), same(hotShort.bytes + hotLong.bytes + ROW_BYTES));
  sizes = { short: hotShort.bytes, long: hotLong.bytes };

  // The short agent's exact prompt again: its row was not kept, so its last prompt token is computed again.
  const again = await chat(server, short('s'), 's');
  t.match(again, { cache: 'ram', computed: 1, text: cold.text }, 'one token computed again, and the same greedy output');
});

t.test('the RAM budget counts logits rows: the least recent entry leaves when one more byte would not fit', async (t) => {
  if (sizes === undefined) return t.fail('needs the sizes the first test measured');
  const budget = sizes.short + sizes.long + ROW_BYTES - 1;
  const server = await serve(freshDir(), budget);
  await chat(server, short('s'), 's');
  await chat(server, long('l'), 'l'); // s to RAM
  t.same(await ramBytes(server), same(sizes.short));
  await chat(server, short('o'), 'o'); // l to RAM, with its row: s no longer fits and is written to disk
  await persisted(server, 's');
  const bytes = await ramBytes(server);
  t.same(bytes, same(sizes.long + ROW_BYTES));
  t.ok(bytes.engine <= budget, `${bytes.engine} ≤ --ram-cache-bytes ${budget}`);
  t.match(await bytesOf(server, 's'), { tier: 'disk' });
});

t.test('a one-shot turn is not written to disk; its conversation coming back is, and so is a long one-shot', async (t) => {
  const cacheDir = freshDir();
  const server = await serve(cacheDir, 64 * 1024 * 1024);
  const opening: ChatMessage[] = [{ role: 'user', content: 'Name a river in Spain.' }];
  const first = await chat(server, opening);
  t.equal(first.cache, 'miss');
  await chat(server, short('witness'), 'witness'); // the one-shot goes to RAM; its write would have been due first
  await persisted(server, 'witness');
  const written = (): unknown[] => server.logs.filter((line) => line.msg === 'agent cache persisted').map((line) => line.agentId);
  t.same(written(), ['witness'], 'only the named agent was written');
  t.same(readdirSync(cacheDir).filter((name) => name.endsWith('.safetensors')).length, 1);

  const next = await chat(server, [...opening, { role: 'assistant', content: first.text }, { role: 'user', content: 'And one in Portugal?' }]);
  t.equal(next.cache, 'ram', 'the conversation came back to its own cache');
  await logged(server, (line) => line.msg === 'agent cache persisted' && String(line.agentId).startsWith('conv-'));

  const document = await chat(server, long('doc'));
  t.ok(document.promptTokens >= ONE_SHOT_WRITE_TOKENS, `${document.promptTokens} prompt tokens`);
  await logged(server, (line) => line.msg === 'agent cache persisted' && String(line.agentId).startsWith('conv-'), 2);
  t.equal(new Set(written()).size, 3, 'the witness, the returning conversation and the long one-shot');
});
