/**
 * Time to first token for a returning agent, by cache tier, at several history lengths, measured in
 * one run on one server build: cold (no cache), hot (cells still in the context), RAM (exported
 * state in memory), disk (its cache file), and disk after a server restart. The agent sends the same
 * history again, which its cache holds whole with the logits that followed it, so no token is
 * computed; one more column is the usual next turn from disk, the history plus a new message. Each
 * is reported as a ratio to cold, next to two physical references measured in the same run: one
 * decode step and reading the agent's cache file + importing its state with the addon directly (the
 * floor for disk).
 *
 *   npm run build && node dist/bench/ttft-tiers.js --shape qwen2.5-0.5b --sizes 1024,2048,4096
 */
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { availableParallelism, cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ensureModel, type ModelShape } from '../shared/gguf/make-model.js';
import { decodeCacheFile } from '../worker/persistence/cache-file.js';
import { modelFingerprint } from '../shared/cache-files.js';
import { loadAddon } from '../worker/engine/addon.js';
import { persisted, startServer, type RunningServer } from '../test/helpers/server.js';

const { values } = parseArgs({ options: { shape: { type: 'string', default: 'qwen2.5-0.5b' }, sizes: { type: 'string', default: '1024,2048,4096' } } });
const sizes = (values.sizes ?? '1024').split(',').map(Number);
const model = await ensureModel(values.shape as ModelShape);
const contextSize = Math.max(...sizes) + 512;

async function serve(cacheDir: string, ramBytes: number): Promise<RunningServer> {
  const server = await startServer([
    'serve',
    '--port',
    '0',
    '--model',
    model,
    '--model-id',
    'bench',
    '--max-sequences',
    '1',
    '--context-size',
    String(contextSize),
    '--batch-tokens',
    '512',
    '--cache-dir',
    cacheDir,
    '--ram-cache-bytes',
    String(ramBytes),
  ]);
  // Warm this client's HTTP path up first, so that the first timed requests measure the server, not
  // the JIT compiling fetch.
  for (let i = 0; i < 20; i++) await (await fetch(`${server.url}/health/live`)).text();
  return server;
}

/**
 * Time to first token of one turn: a request for exactly one token, so the response ends with it.
 * (Timing the first SSE chunk instead would be biased: with random weights the first token is often
 * part of a character, held back until the next token completes it.)
 */
async function turn(server: RunningServer, agent: string, content: string, maxTokens = 1): Promise<{ ms: number; tier: string; computed: number }> {
  const start = performance.now();
  const response = await fetch(`${server.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-agent-id': agent },
    body: JSON.stringify({ model: 'bench', messages: [{ role: 'user', content }], max_tokens: maxTokens, temperature: 0 }),
  });
  await response.json();
  const tier = response.headers.get('x-semantic-cache') ?? '?';
  return { ms: performance.now() - start, tier, computed: Number(response.headers.get('x-semantic-prompt-tokens-computed')) };
}

const history = (tokens: number, salt: string): string => `${salt} ` + 'alpha beta gamma delta '.repeat(Math.round(tokens / 4));

/**
 * The disk tier's physical floor, with the addon directly in this process: read the agent's file, and
 * import its state into a fresh context. Verifying the file (header, SHA-256) is timed apart: the
 * server does it too, but it is not part of the floor.
 */
async function readAndImport(dir: string): Promise<{ read: number; verify: number; importMs: number }> {
  const addon = loadAddon();
  const loaded = await addon.loadModel(model);
  const context = await addon.createContext(loaded, { nCtx: contextSize, nSeqMax: 1, nBatch: 512, threads: availableParallelism() });
  const name = readdirSync(dir).find((f) => f.endsWith('.safetensors')) as string;
  const fingerprint = await modelFingerprint(model);
  const start = performance.now();
  const file = readFileSync(join(dir, name));
  const read = performance.now();
  const contents = decodeCacheFile(file, { agentId: decodeURIComponent(name.replace(/\.safetensors$/, '')), model: fingerprint, kvType: 'f16', vTransposed: true });
  const verified = performance.now();
  await context.stateSeqSet(0, contents.state);
  const imported = performance.now();
  context.dispose();
  loaded.dispose();
  return { read: read - start, verify: verified - read, importMs: imported - verified };
}

/** The median of `n` runs of a cheap measurement (cold, at tens of seconds, is run once). */
async function median<T extends { ms: number }>(n: number, measure: () => Promise<T>): Promise<T> {
  const runs = [];
  for (let i = 0; i < n; i++) runs.push(await measure());
  runs.sort((x, y) => x.ms - y.ms);
  return runs[Math.floor(n / 2)] as T;
}

const REPEATS = 3;
const rows: string[] = [];
const checks: string[] = [];
for (const size of sizes) {
  const ramDir = mkdtempSync(join(tmpdir(), 'bench-ram-'));
  const ramServer = await serve(ramDir, 1 << 30);
  const prompt = history(size, `agent-${size}`);
  const cold = await turn(ramServer, 'a', prompt);
  const hot = await median(REPEATS, () => turn(ramServer, 'a', prompt));
  // One decode step at this history length: 8 more tokens of the same hot turn, over 8.
  const step = ((await turn(ramServer, 'a', prompt, 9)).ms - hot.ms) / 8;
  await turn(ramServer, 'a', prompt); // the 9-token turn cached more than the prompt: cache exactly the prompt again
  const ram = await median(REPEATS, async () => {
    await turn(ramServer, 'b', 'x'); // takes the only sequence: a's state goes to RAM
    return turn(ramServer, 'a', prompt);
  });
  await ramServer.stop();

  const diskDir = mkdtempSync(join(tmpdir(), 'bench-disk-'));
  const diskServer = await serve(diskDir, 0);
  await turn(diskServer, 'a', prompt);
  let writes = 0;
  const fromDisk = async (content: string) => {
    await turn(diskServer, 'b', 'x'); // no RAM tier: a's spill writes its file, and a comes back from it...
    await persisted(diskServer, 'a', ++writes); // ...once written: an agent rarely returns while its write is in flight
    return turn(diskServer, 'a', content);
  };
  const disk = await median(REPEATS, () => fromDisk(prompt));
  // The usual next turn: the history plus a new message, whose tokens (and the template's tail) are computed.
  let asked = 0;
  const diskNext = await median(REPEATS, () => fromDisk(`${prompt} And one more question, number ${++asked}?`));
  await fromDisk(prompt); // a's cache holds exactly the history again...
  await turn(diskServer, 'b', 'x');
  await persisted(diskServer, 'a', ++writes); // ...and so does its file, for the restart below
  await diskServer.stop();
  const restarted = await serve(diskDir, 0);
  const afterRestart = await turn(restarted, 'a', prompt);
  await restarted.stop();
  const floor = await readAndImport(diskDir);
  const limit = floor.read + floor.importMs;

  const ratio = (x: number): string => `${x.toFixed(0)} ms (${(cold.ms / x).toFixed(1)}× faster)`;
  rows.push(
    `| ${size} | ${cold.ms.toFixed(0)} ms | ${ratio(hot.ms)} [${hot.tier}] | ${ratio(ram.ms)} [${ram.tier}] | ${ratio(disk.ms)} [${disk.tier}] | ` +
      `${ratio(afterRestart.ms)} [${afterRestart.tier}] | ${ratio(diskNext.ms)} [${diskNext.tier}, ${diskNext.computed} computed] | ${step.toFixed(1)} ms | ${floor.read.toFixed(0)} + ${floor.importMs.toFixed(0)} ms (verify ${floor.verify.toFixed(0)} ms) |`,
  );
  checks.push(
    `${size}: hot ÷ one decode step = ${(hot.ms / step).toFixed(2)} (target ≤ 1.5); disk ÷ (read + import) = ${(disk.ms / limit).toFixed(2)}, ` +
      `after restart ${(afterRestart.ms / limit).toFixed(2)} (target ≤ 2); cold ÷ disk = ${(cold.ms / disk.ms).toFixed(0)}× (target at 4K ≥ 50)`,
  );
}
console.log(`model ${model}; ${cpus().length} CPUs (${cpus()[0]?.model ?? '?'})`);
console.log('| history tokens | cold TTFT | hot | RAM | disk | disk after restart | disk, + a new message | one decode step | read file + import state |');
console.log('|---|---|---|---|---|---|---|---|---|');
for (const row of rows) console.log(row);
for (const check of checks) console.log(check);
