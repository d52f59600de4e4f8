/**
 * What N agents sharing one long system prompt cost in the RAM and disk tiers, against the ideal of
 * one prefix plus N suffixes (the target: at most 1.5×) and against each agent storing its
 * whole history. Semantic alone, with the side-by-side bench's settings (4 sequences, so all but 4
 * agents are spilled to RAM; every turn is written to disk). Each agent sends the same ~P-token
 * system prompt and its own message; its response says how many prompt tokens it reused.
 *
 *   npm run build && node dist/bench/shared-storage.js [--agents 32] [--prefix 8192]
 *
 * Ideal bytes count the KV cells alone (K and V of every layer, f16): the first agent's cells, plus
 * each later agent's cells past the prefix it reused. Headers, per-cell metadata and the logits row
 * each agent keeps are left out, so the ratio errs high.
 */
import { mkdtempSync, readdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { loadAddon } from '../worker/engine/addon.js';
import { kvBytesPerToken } from '../shared/budgets.js';
import { ensureModel } from '../shared/gguf/make-model.js';
import { startServer } from '../test/helpers/server.js';
import { semanticArgs, words } from './vs-llama-server-targets.js';

const { values } = parseArgs({ options: { agents: { type: 'string', default: '32' }, prefix: { type: 'string', default: '8192' } } });
const agents = Number(values.agents);
const model = await ensureModel('qwen2.5-0.5b');
const info = (await loadAddon().loadModel(model)).info();
const cellBytes = kvBytesPerToken(info, 'f16');
const cacheDir = mkdtempSync(join(tmpdir(), 'bench-storage-'));
const server = await startServer(semanticArgs(model, cacheDir));

/** Cache files under the dir (agent files and shared segment files), and their bytes: what the disk tier holds. */
function onDisk(): { agentFiles: number; bytes: number } {
  const files = (readdirSync(cacheDir, { recursive: true }) as string[]).filter((name) => name.endsWith('.safetensors'));
  return { agentFiles: files.filter((name) => !name.includes('segments')).length, bytes: files.reduce((sum, name) => sum + statSync(join(cacheDir, name)).size, 0) };
}

interface Usage {
  prompt_tokens: number;
  prompt_tokens_details: { cached_tokens: number };
}
interface Listed {
  id: string;
  tier: string;
  tokens: number;
  bytes: number;
}
interface Totals {
  ram: { agents: number; bytes: number };
}
const get = async <T>(path: string): Promise<T> => (await (await fetch(`${server.url}${path}`)).json()) as T;

try {
  const system = words(Number(values.prefix), 'storage-system');
  const reused = new Map<string, number>();
  const started = performance.now();
  for (let i = 0; i < agents; i++) {
    const id = `storage-${i}`;
    const response = await fetch(`${server.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-agent-id': id },
      body: JSON.stringify({
        model: 'bench',
        max_tokens: 1,
        temperature: 0,
        messages: [
          { role: 'system', content: system },
          { role: 'user', content: words(16, `storage-user-${i}`) },
        ],
      }),
    });
    const usage = ((await response.json()) as { usage: Usage }).usage;
    reused.set(id, i === 0 ? 0 : usage.prompt_tokens_details.cached_tokens);
  }
  // Write-behind runs 250 ms after each turn: a bounded wait for the last files.
  for (let i = 0; i < 300 && onDisk().agentFiles < agents; i++) await new Promise((resolve) => setTimeout(resolve, 100));
  const totals = await get<Totals>('/v1/agents/stats');
  const disk = onDisk();
  const listed = (await get<{ data: Listed[] }>('/v1/agents')).data;
  const tokensOf = new Map(listed.map((a) => [a.id, a.tokens]));
  const prefix = Math.min(...[...reused.values()].filter((n) => n > 0));
  /** One copy of the shared prefix, then each agent's own cells past it. */
  const ideal = (ids: string[]): number => cellBytes * (prefix + ids.reduce((sum, id) => sum + (tokensOf.get(id) ?? 0) - prefix, 0));
  const whole = (ids: string[]): number => cellBytes * ids.reduce((sum, id) => sum + (tokensOf.get(id) ?? 0), 0);
  const inRam = listed.filter((a) => a.tier === 'ram').map((a) => a.id);
  const all = [...tokensOf.keys()];
  const row = (tier: string, bytes: number, ids: string[]): string =>
    `| ${tier} | ${ids.length} | ${(bytes / 2 ** 20).toFixed(1)} MiB | ${(ideal(ids) / 2 ** 20).toFixed(1)} MiB | ${(bytes / ideal(ids)).toFixed(2)} | ${(whole(ids) / 2 ** 20).toFixed(1)} MiB | ${(bytes / whole(ids)).toFixed(3)} |`;
  console.log(
    `${agents} agents, shared prefix ${prefix} tokens (reused by agents 2..${agents}), ${cellBytes} KV bytes per cell, ${((performance.now() - started) / 1000).toFixed(0)} s`,
  );
  console.log('| tier | agents | bytes held | one prefix + suffixes | ratio (target ≤ 1.5) | each agent whole | ratio to whole |');
  console.log('|---|---|---|---|---|---|---|');
  console.log(row('RAM', totals.ram.bytes, inRam));
  console.log(row(`disk (${disk.agentFiles} agent files)`, disk.bytes, all));
} finally {
  await server.stop();
}
