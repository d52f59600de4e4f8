// A shared prefix is stored once, in the RAM tier and on disk: 8 agents that open with the same system prompt,
// spilled to RAM, hold one segment of the common prefix (whole 16-token blocks) plus each agent's own
// cells. Byte figures are exact, from llama.cpp's state format: a state of n cells is H + n·C bytes,
// with H and C measured here from two states the addon exports on the same model. Returning agents
// still restore (from RAM; from disk, also after a restart) with cold-equal greedy output; deleting
// one keeps the others' hits, deleting all frees the prefix.
import t, { type Test } from 'tap';
import { mkdtempSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadAddon } from '../../worker/engine/addon.js';
import { cachedAfter, expectedReuse, greedyReference } from '../helpers/greedy.js';
import { tinyModelPath } from '../helpers/model.js';
import { persisted, startServer, type RunningServer } from '../helpers/server.js';
import { cacheFileName } from '../../shared/cache-files.js';
import type { ChatMessage } from '../../shared/protocol/messages.js';

const modelPath = await tinyModelPath();
const MAX = 6;
const AGENTS = Array.from({ length: 8 }, (_, i) => `worker-${i}`);
const SYSTEM = Array.from({ length: 40 }, (_, i) => `Rule ${i}: answer the swarm's task ${i % 7} briefly.`).join(' ');
const talk = (agent: string): ChatMessage[] => [
  { role: 'system', content: SYSTEM },
  { role: 'user', content: `I am ${agent}; which task is mine?` },
];

/** H and C of the state format: bytes of a one-sequence state = H + cells · C; and the bytes of one logits row. */
async function stateFormat(): Promise<{ header: number; perCell: number; logitsRow: number }> {
  const addon = loadAddon();
  const model = await addon.loadModel(modelPath);
  const logitsRow = model.info().vocabSize * Float32Array.BYTES_PER_ELEMENT;
  const ctx = await addon.createContext(model, { nCtx: 256, nSeqMax: 1, threads: 1 });
  const sizeAfter = async (n: number): Promise<number> => {
    ctx.seqRemove(0);
    await ctx.decode({ tokens: new Int32Array(n).fill(100), positions: Int32Array.from({ length: n }, (_, i) => i), seqIds: new Int32Array(n), logits: new Uint8Array(n) });
    return (await ctx.stateSeqGet(0)).byteLength;
  };
  const [two, five] = [await sizeAfter(2), await sizeAfter(5)];
  ctx.dispose();
  model.dispose();
  const perCell = (five - two) / 3;
  return { header: two - 2 * perCell, perCell, logitsRow };
}

interface Listed {
  id: string;
  tier: string;
  tokens: number;
  bytes: number;
}

async function call(server: RunningServer, method: string, path: string): Promise<{ status: number; body: unknown }> {
  const response = await fetch(`${server.url}${path}`, { method });
  return { status: response.status, body: await response.json() };
}

async function turn(server: RunningServer, agent: string, messages: ChatMessage[]): Promise<{ text: string; tier: string | null; cached: number }> {
  const response = await fetch(`${server.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-agent-id': agent },
    body: JSON.stringify({ model: 'tiny', messages, max_tokens: MAX, temperature: 0 }),
  });
  const body = (await response.json()) as { choices: { message: { content: string } }[]; usage: { prompt_tokens_details: { cached_tokens: number } } };
  if (response.status !== 200) throw new Error(`${response.status}: ${JSON.stringify(body)}`);
  return { text: body.choices[0]?.message.content ?? '', tier: response.headers.get('x-semantic-cache'), cached: body.usage.prompt_tokens_details.cached_tokens };
}

const ramBytes = async (server: RunningServer): Promise<number> => ((await call(server, 'GET', '/v1/agents/stats')).body as { ram: { bytes: number } }).ram.bytes;
const inRam = async (server: RunningServer): Promise<Listed[]> => ((await call(server, 'GET', '/v1/agents')).body as { data: Listed[] }).data.filter((a) => a.tier === 'ram');

const { header, perCell, logitsRow } = await stateFormat();
const cold = new Map(await Promise.all(AGENTS.map(async (a) => [a, await greedyReference(modelPath, talk(a), MAX)] as const)));
const first = cold.get('worker-0');
const second = cold.get('worker-1');
if (first === undefined || second === undefined) throw new Error('no references');
// The segment is the agents' common prefix cut to whole 16-token blocks.
const prefix = Math.floor(expectedReuse(cachedAfter(first), second) / 16) * 16;

t.test('8 agents sharing a prefix hold it once in RAM, plus their own cells', async (t) => {
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
    '--disk-cache-bytes',
    '0',
    '--ram-cache-bytes',
    String(256 * 1024 * 1024),
    '--cache-dir',
    mkdtempSync(join(tmpdir(), 'semantic-agents-')),
  ]);
  t.teardown(() => server.stop());
  for (const agent of AGENTS) t.equal((await turn(server, agent, talk(agent))).text, cold.get(agent)?.text, `${agent}: cold-equal output`);
  await turn(server, 'outsider', [{ role: 'user', content: 'Something else entirely.' }]); // spills the last worker too

  const listed = await inRam(server);
  t.same(listed.map((a) => a.id).sort(), [...AGENTS].sort(), 'all 8 workers are in RAM');
  t.ok(prefix > 300, `a ${prefix}-token prefix is shared`);
  // A worker's whole state (header + its cells) is smaller than a logits row, so no row is kept (hot-cache.ts keptLogits).
  for (const agent of listed) {
    t.ok(header + agent.tokens * perCell < logitsRow, `${agent.id}: a ${agent.tokens}-cell state is smaller than a logits row`);
    t.equal(agent.bytes, header + (agent.tokens - prefix) * perCell, `${agent.id} holds only its own ${agent.tokens - prefix} cells, and no logits row`);
  }
  const stored = header + prefix * perCell + listed.reduce((sum, a) => sum + a.bytes, 0);
  t.equal(await ramBytes(server), stored, 'the tier holds one prefix plus 8 suffixes');
  const storedCells = stored;
  const unsharedCells = listed.reduce((sum, a) => sum + header + a.tokens * perCell, 0);
  t.ok(storedCells * 3 < unsharedCells, `KV state: ${storedCells} bytes instead of ${unsharedCells}`);

  // Deleting one agent keeps the prefix for the others: worker-3 returns from RAM, cold-equal.
  const gone = listed.find((a) => a.id === 'worker-0') as Listed;
  t.equal((await call(server, 'DELETE', '/v1/agents/worker-0')).status, 200);
  t.equal(await ramBytes(server), stored - gone.bytes, 'only its own cells are freed');
  const reference = cold.get('worker-3');
  if (reference === undefined) throw new Error('no reference');
  const back = await turn(server, 'worker-3', talk('worker-3'));
  t.equal(back.tier, 'ram');
  t.equal(back.cached, expectedReuse(cachedAfter(reference), reference));
  t.equal(back.text, reference.text, 'restored from the prefix segment and its own cells: cold-equal');

  // Deleting every agent frees the prefix too.
  for (const agent of [...AGENTS.slice(1), 'outsider']) t.equal((await call(server, 'DELETE', `/v1/agents/${agent}`)).status, 200, `delete ${agent}`);
  t.equal(await ramBytes(server), 0, 'nothing is left in RAM, shared prefix included');
});

/** A cache file's safetensors header: its metadata and the state tensor's size. */
function fileHeader(path: string): { metadata: Record<string, string>; stateBytes: number } {
  const file = readFileSync(path);
  const header = JSON.parse(file.toString('utf8', 8, 8 + Number(file.readBigUInt64LE(0)))) as { __metadata__: Record<string, string>; state: { data_offsets: [number, number] } };
  return { metadata: header.__metadata__, stateBytes: header.state.data_offsets[1] - header.state.data_offsets[0] };
}

/**
 * One sequence: each agent is spilled (and written whole, then cut) when the next arrives. Sixteen:
 * all stay hot and each turn is written behind, and once the segment file exists an agent exports
 * only its cells past it (through the scratch sequence); the files must be the same either way.
 */
for (const [sequences, how] of [
  [1, 'spilled'],
  [16, 'written behind while hot'],
] as const) {
  t.test(`on disk (${how}): one segment file holds the prefix, each agent file its own cells, also across a restart`, (t) => onDisk(t, sequences));
}

async function onDisk(t: Test, sequences: number): Promise<void> {
  const cacheDir = mkdtempSync(join(tmpdir(), 'semantic-agents-'));
  const args = [
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
    String(sequences),
    '--ram-cache-bytes',
    '0',
    '--cache-dir',
    cacheDir,
  ];
  const first = await startServer(args);
  for (const agent of AGENTS) {
    await turn(first, agent, talk(agent));
    if (sequences > 1) await persisted(first, agent); // its write-behind, not a spill, wrote it
  }
  await turn(first, 'outsider', [{ role: 'user', content: 'Something else entirely.' }]);
  t.equal(await first.stop('SIGTERM'), 0, 'drained: every write and rewrite has landed');

  const segments = readdirSync(join(cacheDir, 'segments')).filter((name) => name.endsWith('.safetensors'));
  t.equal(segments.length, 1, 'one segment file');
  const segmentPath = join(cacheDir, 'segments', segments[0] as string);
  const segment = fileHeader(segmentPath);
  t.equal(Number(segment.metadata.token_count), prefix);
  t.equal(segment.stateBytes, header + prefix * perCell, "the segment holds the prefix's cells");
  let files = statSync(segmentPath).size;
  for (const agent of AGENTS) {
    const path = join(cacheDir, cacheFileName(agent));
    const { metadata, stateBytes } = fileHeader(path);
    t.equal(metadata.format, 'semantic-kv-cache/4');
    t.equal(`${metadata.prefix_segment}.safetensors`, segments[0], `${agent} names the segment`);
    t.equal(Number(metadata.prefix_tokens), prefix);
    t.equal(stateBytes, header + (Number(metadata.token_count) - prefix) * perCell, `${agent}'s file holds only its own cells`);
    files += statSync(path).size;
  }
  files += statSync(join(cacheDir, cacheFileName('outsider'))).size;

  const second = await startServer(args);
  t.teardown(() => second.stop());
  const learned = async (): Promise<boolean> => ((await call(second, 'GET', '/v1/agents')).body as { data: { tokens: number | null }[] }).data.every((a) => a.tokens !== null);
  for (let i = 0; i < 200 && !(await learned()); i++); // headers are read in the background after startup
  const diskBytes = async (): Promise<number> => ((await call(second, 'GET', '/v1/agents/stats')).body as { disk: { bytes: number } }).disk.bytes;
  t.equal(await diskBytes(), files, 'the tier counts the segment once, plus every agent file');

  for (const agent of ['worker-3', 'worker-5']) {
    const reference = cold.get(agent);
    if (reference === undefined) throw new Error('no reference');
    const back = await turn(second, agent, talk(agent));
    t.equal(back.tier, 'disk', `${agent} returns from its file joined to the segment`);
    t.equal(back.cached, expectedReuse(cachedAfter(reference), reference));
    t.equal(back.text, reference.text, 'cold-equal output');
    if (agent === 'worker-3') t.equal((await call(second, 'DELETE', '/v1/agents/worker-0')).status, 200, 'deleting one agent keeps the segment');
  }
  for (const agent of [...AGENTS.filter((a) => a !== 'worker-0'), 'outsider']) t.equal((await call(second, 'DELETE', `/v1/agents/${agent}`)).status, 200, `delete ${agent}`);
  t.equal(await diskBytes(), 0, 'no file is counted, the segment included');
  t.equal(await second.stop('SIGTERM'), 0);
  t.same(
    readdirSync(join(cacheDir, 'segments')).filter((name) => name.endsWith('.safetensors')),
    [],
    'the segment file is gone with its last user',
  );
}
