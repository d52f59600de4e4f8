// The disk tier across restarts: each completed turn is written behind to a safetensors file in the
// cache dir; a new server process reads it when the agent returns. Bad files are quarantined and the
// request is a clean miss with the right answer.
import t from 'tap';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync, truncateSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { greedyReference } from '../helpers/greedy.js';
import { ensureModel } from '../../shared/gguf/make-model.js';
import { tinyModelPath } from '../helpers/model.js';
import { loadAddon } from '../../worker/engine/addon.js';
import { persisted, startServer, type RunningServer } from '../helpers/server.js';
import type { ChatMessage } from '../../shared/protocol/messages.js';
import { sample } from '../helpers/exposition.js';

const modelPath = await tinyModelPath();
const model = await loadAddon().loadModel(modelPath);
const MAX = 10;

async function serve(cacheDir: string, model = modelPath): Promise<RunningServer> {
  // Sharing off: these agents send the same prompt, and each must be served from its own file or miss.
  const server = await startServer([
    'serve',
    '--port',
    '0',
    '--model',
    model,
    '--model-id',
    'tiny',
    '--threads',
    '1',
    '--context-size',
    '2048',
    '--cache-dir',
    cacheDir,
    '--prefix-sharing',
    'off',
  ]);
  t.teardown(() => server.stop());
  return server;
}

async function turn(server: RunningServer, agent: string, messages: ChatMessage[]) {
  const response = await fetch(`${server.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-agent-id': agent },
    body: JSON.stringify({ model: 'tiny', messages, max_tokens: MAX, temperature: 0 }),
  });
  const body = (await response.json()) as { choices: { message: { content: string } }[]; usage: { prompt_tokens_details: { cached_tokens: number } } };
  return {
    status: response.status,
    tier: response.headers.get('x-semantic-cache'),
    text: body.choices[0]?.message.content ?? '',
    cached: body.usage.prompt_tokens_details.cached_tokens,
  };
}

const hello: ChatMessage[] = [{ role: 'user', content: 'Remember the number 42.' }];

t.test('a returning agent is served from its file by a restarted server, output equal to cold', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'semantic-disk-'));
  const cold = await greedyReference(modelPath, hello, MAX);
  const first = await serve(dir);
  await turn(first, 'agent:one', hello);
  await persisted(first, 'agent:one');
  t.equal(await first.stop(), 0);
  t.same(readdirSync(dir), ['agent%3Aone.safetensors'], 'one file, its name escaped');

  const file = readFileSync(join(dir, 'agent%3Aone.safetensors'));
  const headerLength = Number(file.readBigUInt64LE(0));
  const header = JSON.parse(file.toString('utf8', 8, 8 + headerLength)) as Record<string, { dtype?: string; shape?: number[]; data_offsets?: number[] } & Record<string, string>>;
  t.equal(header.__metadata__?.format, 'semantic-kv-cache/4', 'a standard safetensors header with our metadata');
  t.equal(header.__metadata__?.agent_id, 'agent:one');
  t.equal(header.tokens?.dtype, 'I32');
  t.equal(header.tokens?.shape?.[0], cold.promptTokens + MAX - 1, 'prompt + every decoded token');
  const [logitsStart, logitsEnd] = header.logits?.data_offsets ?? [];
  t.equal(header.logits?.dtype, 'F32');
  // A row of logits (one per vocabulary token) is bigger than this short state, so none is stored (hot-cache.ts keptLogits).
  t.ok(
    header.state?.data_offsets !== undefined && header.state.data_offsets[1]! - header.state.data_offsets[0]! < 4 * model.info().vocabSize,
    'the state is smaller than a logits row',
  );
  t.equal(header.logits?.shape?.[0], 0, 'so the logits tensor is empty');
  t.equal((logitsEnd ?? 0) - (logitsStart ?? 0), 0);
  t.equal(file.length, 8 + headerLength + (header.state?.data_offsets?.[1] ?? 0), 'data offsets cover the file exactly');

  const second = await serve(dir);
  const back = await turn(second, 'agent:one', hello);
  t.equal(back.tier, 'disk');
  t.equal(back.cached, cold.promptTokens - 1);
  t.equal(back.text, cold.text);
});

t.test('truncated, corrupted and foreign files are quarantined; the request is a clean miss', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'semantic-disk-'));
  const cold = await greedyReference(modelPath, hello, MAX);
  const writer = await serve(dir);
  for (const agent of ['cut', 'flip', 'other']) {
    await turn(writer, agent, hello);
    await persisted(writer, agent);
  }
  await writer.stop();
  truncateSync(join(dir, 'cut.safetensors'), 100);
  const flipped = readFileSync(join(dir, 'flip.safetensors'));
  flipped[flipped.length - 7] = (flipped[flipped.length - 7] ?? 0) ^ 0xff;
  writeFileSync(join(dir, 'flip.safetensors'), flipped);

  const otherModel = await ensureModel('tiny', 1);
  const foreign = await serve(dir, otherModel);
  const other = await turn(foreign, 'other', hello);
  t.equal(other.tier, 'miss', 'a file of another model is never loaded');
  t.equal(other.cached, 0);
  t.equal(other.text, (await greedyReference(otherModel, hello, MAX)).text);
  await foreign.stop();

  const server = await serve(dir);
  for (const agent of ['cut', 'flip']) {
    const result = await turn(server, agent, hello);
    t.equal(result.status, 200, `${agent}: answered`);
    t.equal(result.tier, 'miss', `${agent}: a clean miss`);
    t.equal(result.text, cold.text, `${agent}: the right answer`);
  }
  const metrics = await (await fetch(`${server.url}/metrics`)).text();
  t.equal(sample(metrics, 'semantic_disk_quarantined_files_total'), 2, 'both bad files counted by the server that found them');
  const quarantined = readdirSync(join(dir, 'quarantine'));
  t.equal(quarantined.filter((f) => f.startsWith('cut.safetensors')).length, 1);
  t.equal(quarantined.filter((f) => f.startsWith('flip.safetensors')).length, 1);
  t.equal(quarantined.filter((f) => f.startsWith('other.safetensors')).length, 1);
  t.same(
    readdirSync(dir).filter((name) => name.endsWith('.tmp')),
    [],
    'no temp file left (worker/persistence/temp-files.ts names them)',
  );
});
