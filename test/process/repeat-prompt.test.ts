// A request whose whole prompt an agent's cache already holds (a retry, a repeated request) is
// answered with no decode before its first token: every tier keeps the logits that followed the
// cached tokens, for a cache whose state is at least as big as that row (this prompt is some 2,900
// tokens; a short one's row is dropped in RAM and on disk, test/process/memory-accounting.test.ts). From each tier — hot, RAM, disk, disk after a restart — the repeat computes 0 prompt
// tokens, reports them all cached, and its greedy output equals a cold run's token for token.
import t, { type Test } from 'tap';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { greedyReference } from '../helpers/greedy.js';
import { tinyModelPath } from '../helpers/model.js';
import { persisted, startServer, type RunningServer } from '../helpers/server.js';
import type { ChatMessage } from '../../shared/protocol/messages.js';

const modelPath = await tinyModelPath();
const MAX = 12;
const filler = Array.from({ length: 1000 }, (_, i) => `w${i % 97}`).join(' ');
const question: ChatMessage[] = [{ role: 'user', content: `Name three rivers in Europe. ${filler}` }];
const other: ChatMessage[] = [{ role: 'user', content: 'Something else entirely.' }];

async function serve(cacheDir: string, ramBytes: string): Promise<RunningServer> {
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
    '4096',
    '--max-sequences',
    '1',
    '--cache-dir',
    cacheDir,
    '--ram-cache-bytes',
    ramBytes,
    '--prefix-sharing',
    'off', // each agent asks the same question; this is about its own cache
  ]);
  t.teardown(() => server.stop());
  return server;
}

async function turn(server: RunningServer, agent: string, messages: ChatMessage[], maxTokens: number) {
  const response = await fetch(`${server.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-agent-id': agent },
    body: JSON.stringify({ model: 'tiny', messages, max_tokens: maxTokens, temperature: 0 }),
  });
  const body = (await response.json()) as {
    choices: { message: { content: string } }[];
    usage: { prompt_tokens: number; completion_tokens: number; prompt_tokens_details: { cached_tokens: number } };
  };
  return {
    tier: response.headers.get('x-semantic-cache'),
    computed: Number(response.headers.get('x-semantic-prompt-tokens-computed')),
    text: body.choices[0]?.message.content ?? '',
    usage: body.usage,
  };
}

const cold = await greedyReference(modelPath, question, MAX);

/** A one-token turn leaves exactly the prompt in the agent's cache (the sampled token is never decoded). */
async function cacheExactlyThePrompt(t: Test, server: RunningServer, agent: string): Promise<void> {
  const first = await turn(server, agent, question, 1);
  t.equal(first.tier, 'miss');
}

function assertRepeat(t: Test, repeat: Awaited<ReturnType<typeof turn>>, tier: string): void {
  t.equal(repeat.tier, tier);
  t.equal(repeat.computed, 0, 'no prompt token computed');
  t.equal(repeat.usage.prompt_tokens_details.cached_tokens, cold.promptTokens, 'the whole prompt reported cached');
  t.equal(repeat.usage.completion_tokens, cold.tokens.length);
  t.equal(repeat.text, cold.text, 'greedy output equals the cold run');
}

t.test('hot and RAM: the repeat samples from the kept logits', async (t) => {
  const server = await serve(mkdtempSync(join(tmpdir(), 'semantic-repeat-')), '1000000000');
  await cacheExactlyThePrompt(t, server, 'hot-agent');
  assertRepeat(t, await turn(server, 'hot-agent', question, MAX), 'hot');

  await cacheExactlyThePrompt(t, server, 'ram-agent');
  t.equal((await turn(server, 'other', other, 1)).tier, 'miss', 'takes the only sequence: ram-agent goes to RAM');
  assertRepeat(t, await turn(server, 'ram-agent', question, MAX), 'ram');
});

t.test('disk, and disk after a restart: the logits come from the file', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'semantic-repeat-'));
  const server = await serve(dir, '0');
  await cacheExactlyThePrompt(t, server, 'disk-agent');
  await turn(server, 'other', other, 1); // no RAM tier: the spill writes disk-agent's file
  await persisted(server, 'disk-agent');
  assertRepeat(t, await turn(server, 'disk-agent', question, MAX), 'disk');

  await cacheExactlyThePrompt(t, server, 'restart-agent');
  await persisted(server, 'restart-agent');
  t.equal(await server.stop(), 0);
  const restarted = await serve(dir, '0');
  assertRepeat(t, await turn(restarted, 'restart-agent', question, MAX), 'disk');
});
