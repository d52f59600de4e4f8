/**
 * Semantic side by side with llama-server built from the same llama.cpp source, on the same GGUF
 * (the generated Qwen2.5-0.5B-shape model, Q8_0) with matched settings: 4 sequences/slots, a 16K
 * unified context, 2 threads, no flash attention, 512-token batches, 4 GiB of host-memory cache.
 * The servers run one at a time, each through every workload, and each counts prompt tokens itself
 * (usage.prompt_tokens; computed ones from X-Semantic-Prompt-Tokens-Computed or timings.prompt_n).
 * The point is what a multi-agent server should win — returning agents, restarts, shared prefixes —
 * without losing raw prefill or decode speed, so every row prints ours ÷ theirs next to its target.
 * A time to first token is a request for exactly one token, timed whole (as bench/ttft-tiers.ts).
 *
 *   npm run bench:vs-llama-server -- [--quick] [--rounds N] [--flash-attention] [--llama-libs addon|own] [--workloads cold,decode,hot,ram,shared,coding,restart] [--out results.json]
 *
 * This machine's speed drifts by ±25% within minutes (other tenants), so one pass per server can
 * show a gap that is only the drift. `--rounds N` runs N rounds, each starting both servers afresh,
 * in alternating order (ABBA…), and the table shows each server's median over the rounds, with the
 * spread of the per-round ratios in the notes.
 *
 * llama-server: $SEMANTIC_LLAMA_SERVER, else built once from node-llama-cpp's llama.cpp bundle (bench/llama-server-build.ts).
 * By default it runs on the libllama/libggml the addon links (`--llama-libs addon`), so the two
 * servers share one library and the rows compare the servers; `--llama-libs own` keeps its native build.
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { parseArgs } from 'node:util';
import { ensureModel } from '../shared/gguf/make-model.js';
import { projectRoot } from '../shared/paths.js';
import { addonLibraryDir, ensureLlamaServer, llamaCppSource, stageOnLibraries } from './llama-server-build.js';
import { median } from './stats.js';
import { allWorkloads, size, sizes, type Measured, type Row } from './vs-llama-server-workloads.js';
import { llamaServerArgs, semanticArgs, settings, startLlamaServer, startSemantic, warmUp, type Kind, type Target } from './vs-llama-server-targets.js';

const { values } = parseArgs({
  options: {
    workloads: { type: 'string', default: 'cold,decode,hot,ram,shared,coding,restart' },
    quick: { type: 'boolean', default: false },
    rounds: { type: 'string', default: '1' },
    /** Flash attention on for both servers (llama-server's default, `-fa auto`, turns it on for the CPU). */
    'flash-attention': { type: 'boolean', default: false },
    out: { type: 'string' },
    /** Run only one of them (development): its raw results, no table. */
    servers: { type: 'string', default: 'semantic,llama-server' },
    /** `addon`: llama-server runs on the libllama/libggml the addon links (the same library); `own`: on its native build. */
    'llama-libs': { type: 'string', default: 'addon' },
  },
});
settings.flashAttention = values['flash-attention'] ?? false;
const selected = new Set((values.workloads ?? '').split(','));

Object.assign(size, values.quick ? sizes.quick : sizes.full);
const workloads = allWorkloads.filter((w) => selected.has(w.name));

async function runAll(target: Target): Promise<Record<string, Measured>> {
  const results: Record<string, Measured> = {};
  try {
    await warmUp(target);
    for (const workload of workloads) {
      const start = performance.now();
      results[workload.name] = await workload.run(target);
      console.log(`${target.kind} ${workload.name}: ${((performance.now() - start) / 1000).toFixed(0)} s ${JSON.stringify(results[workload.name])}`);
    }
  } catch (error) {
    console.error(`${target.kind}: a workload failed:`, error); // before stopping the server, which may take a while
    throw error;
  } finally {
    await target.stop();
  }
  return results;
}

const fixed = (x: number): string => (Number.isFinite(x) ? (Math.abs(x) >= 100 ? x.toFixed(0) : x.toFixed(Math.abs(x) >= 10 ? 1 : 2)) : String(x));

function table(rows: Row[]): string[] {
  const lines = ['| workload | measure | Semantic | llama-server | Semantic ÷ llama-server | target | met | notes |', '|---|---|---|---|---|---|---|---|'];
  for (const row of rows) {
    const ratio = row.ours / row.theirs;
    const judged = row.target.absolute === true ? row.ours : ratio;
    const met = row.target.op === '≥' ? judged >= row.target.ratio : judged <= row.target.ratio;
    const target = `${row.target.absolute === true ? 'Semantic ' : ''}${row.target.op} ${fixed(row.target.ratio)}`;
    lines.push(
      `| ${row.workload} | ${row.metric} | ${fixed(row.ours)} ${row.unit} | ${fixed(row.theirs)} ${row.unit} | ${fixed(ratio)} | ${target} | ${met ? 'yes' : '**no**'} | ${row.note} |`,
    );
  }
  return lines;
}

function machine(): Record<string, string | number> {
  const git = (...args: string[]): string => execFileSync('git', args, { cwd: projectRoot(), encoding: 'utf8' }).trim();
  return {
    cpu: cpus()[0]?.model ?? '?',
    cores: cpus().length,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    commit: git('log', '-1', '--format=%h %s'),
    dirty: git('status', '--porcelain').length > 0 ? 'yes' : 'no',
  };
}

const servers = new Set((values.servers ?? '').split(','));
const libraries = values['llama-libs'] === 'own' ? 'own' : addonLibraryDir();
const built = servers.has('llama-server') ? ensureLlamaServer() : '';
const binary = built !== '' && libraries !== 'own' ? stageOnLibraries(built, libraries) : built;
const model = await ensureModel('qwen2.5-0.5b');
const info = {
  date: new Date().toISOString(),
  machine: machine(),
  llamaCpp: llamaCppSource(),
  llamaServer: binary,
  llamaLibraries: libraries,
  model,
  quick: values.quick,
  size,
  semanticArgs: semanticArgs(model, '<tmp>'),
  llamaServerArgs: llamaServerArgs(model, 0),
};
console.log(JSON.stringify(info));
type Results = Record<Kind, Record<string, Measured>>;
const rounds: Results[] = [];
for (let round = 0; round < Number(values.rounds); round++) {
  const order: Kind[] = round % 2 === 0 ? ['semantic', 'llama-server'] : ['llama-server', 'semantic'];
  const results: Results = { semantic: {}, 'llama-server': {} };
  for (const kind of order.filter((k) => servers.has(k))) {
    results[kind] = await runAll(kind === 'semantic' ? await startSemantic(model) : await startLlamaServer(binary, model));
  }
  rounds.push(results);
}
if (servers.size < 2) process.exit(0);

/** Each number the median of its rounds; a label (a cache tier) the last round's. */
function medianOf(measured: Measured[]): Measured {
  const out: Measured = {};
  for (const key of Object.keys(measured[0] ?? {})) {
    const values = measured.map((m) => m[key]);
    out[key] = values.every((v) => typeof v === 'number') ? median(values as number[]) : (values.at(-1) ?? '');
  }
  return out;
}
const rowsOf = (results: Results): Row[] => workloads.flatMap((w) => w.rows(results.semantic[w.name] ?? {}, results['llama-server'][w.name] ?? {}));
const medians: Results = { semantic: {}, 'llama-server': {} };
for (const kind of ['semantic', 'llama-server'] as const) {
  for (const w of workloads) medians[kind][w.name] = medianOf(rounds.map((r) => r[kind][w.name] ?? {}));
}
const perRound = rounds.map(rowsOf);
const rows = rowsOf(medians).map((row, i) => {
  if (rounds.length < 2) return row;
  const ratios = perRound.map((r) => (r[i]?.ours ?? NaN) / (r[i]?.theirs ?? NaN));
  return { ...row, note: `${row.note}; rounds ${Math.min(...ratios).toFixed(2)}–${Math.max(...ratios).toFixed(2)}` };
});
console.log(
  `\n${info.machine.cores} × ${info.machine.cpu}; commit ${info.machine.commit}; llama.cpp ${info.llamaCpp.tag} (${info.llamaCpp.commit.slice(0, 12)}); ${rounds.length} round(s), medians`,
);
for (const line of table(rows)) console.log(line);
if (values.out !== undefined) writeFileSync(values.out, JSON.stringify({ ...info, rounds, medians, rows }, null, 2));
