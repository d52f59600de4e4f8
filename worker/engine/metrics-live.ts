/**
 * The inference thread's gauges of current state, read from the live engine when scraped (prom-client's
 * `collect()`), between steps: the very counts `/debug/engine` and the Agents API report, so they never
 * disagree and are never a stale copy. Nothing here is an event: those are counted in metrics.ts.
 */
import { Gauge, type Registry } from 'prom-client';
import type { EngineStats } from '../../shared/protocol/messages.js';
import { MEMORY_HELP } from '../../shared/metrics-buckets.js';

/** The disk writer thread's pool (piscina): its own queue and timing summaries, in milliseconds. */
export interface WriterStats {
  queueSize: number;
  waitMs: { p50: number; p99: number };
  runMs: { p50: number; p99: number };
}

/** What the gauges read: the engine serving now, its disk tier, and what its model is. */
export interface LiveSource {
  stats(): EngineStats;
  /** Bytes of one KV cell (all layers, K and V) at the context's KV type. */
  bytesPerCell: number;
  disk: { bytes: number; files: number; budgetBytes: number; writer(): WriterStats } | undefined;
  /** The queue limit in force now (--max-queued, or what the admin API set since). */
  maxQueued(): number;
  model: { model: string; kvType: string; context: number };
}

type Read = () => LiveSource | undefined;

function gauge(registry: Registry, name: string, help: string, labelNames: string[], read: Read, set: (gauge: Gauge, live: LiveSource) => void): void {
  new Gauge({
    name,
    help,
    labelNames,
    registers: [registry],
    collect() {
      const live = read();
      if (live !== undefined) set(this, live);
    },
  });
}

export function registerLiveGauges(registry: Registry, read: Read): void {
  registerRequestGauges(registry, read);
  registerKvGauges(registry, read);
  registerTierGauges(registry, read);
  registerWriterGauges(registry, read);
  gauge(registry, 'semantic_model_info', 'The model served now (value 1): its id, KV cache type and context cells.', ['model', 'kv_type', 'context'], read, (g, live) => {
    g.reset(); // a swap: the old model's series goes
    g.set({ model: live.model.model, kv_type: live.model.kvType, context: String(live.model.context) }, 1);
  });
}

function registerRequestGauges(registry: Registry, read: Read): void {
  gauge(registry, 'semantic_num_requests_running', 'Requests decoding now (vLLM num_requests_running).', [], read, (g, live) => g.set(live.stats().activeSequences));
  gauge(registry, 'semantic_num_requests_waiting', "Requests waiting: behind their agent's running turn or for cells (vLLM num_requests_waiting).", [], read, (g, live) =>
    g.set(live.stats().queuedRequests),
  );
  gauge(registry, 'semantic_request_queue_depth', 'Requests counted against the queue limits (maxQueued): the same as semantic_num_requests_waiting.', [], read, (g, live) =>
    g.set(live.stats().queuedRequests),
  );
  gauge(
    registry,
    'semantic_request_queue_limit',
    'Requests that may wait (maxQueued, as the admin API may have changed it): what semantic_request_queue_depth is measured against.',
    [],
    read,
    (g, live) => g.set(live.maxQueued()),
  );
  gauge(registry, 'semantic_agents_active', 'Agents with a request decoding now.', [], read, (g, live) => g.set(live.stats().activeSequences));
}

function registerKvGauges(registry: Registry, read: Read): void {
  gauge(registry, 'semantic_kv_cells', 'KV cells by state: used (running requests), evictable (idle agents, reclaimable) and free.', ['state'], read, (g, live) => {
    const { cells, evictable } = kvCells(live.stats());
    g.set({ state: 'used' }, cells.used - evictable);
    g.set({ state: 'evictable' }, evictable);
    g.set({ state: 'free' }, cells.total - cells.used);
  });
  gauge(
    registry,
    'semantic_pool_utilization_ratio',
    "Share of the KV block pool reserved for running requests (idle agents' blocks are reclaimable, so not counted).",
    [],
    read,
    (g, live) => {
      const stats = live.stats();
      g.set(stats.totalBlocks === 0 ? 0 : (stats.usedBlocks - stats.idleBlocks) / stats.totalBlocks);
    },
  );
  gauge(registry, 'semantic_memory_used_bytes', MEMORY_HELP, ['kind'], read, (g, live) => {
    const stats = live.stats();
    g.set({ kind: 'kv' }, stats.usedCells * live.bytesPerCell);
    g.set({ kind: 'ram_tier' }, stats.ramBytes);
  });
}

/** Used cells of idle agents: their blocks' cells, at most the used count. */
function kvCells(stats: EngineStats): { cells: { used: number; total: number }; evictable: number } {
  const evictable = Math.min(stats.usedCells, stats.idleBlocks * stats.blockSize);
  return { cells: { used: stats.usedCells, total: stats.totalCells }, evictable };
}

function registerTierGauges(registry: Registry, read: Read): void {
  gauge(registry, 'semantic_agents', 'Agents whose cache is in each tier (hot: idle cells in the context; an agent may be in ram and disk both).', ['tier'], read, (g, live) => {
    const stats = live.stats();
    g.set({ tier: 'hot' }, stats.idleSequences);
    g.set({ tier: 'ram' }, stats.ramAgents);
    if (live.disk !== undefined) g.set({ tier: 'disk' }, live.disk.files);
  });
  gauge(registry, 'semantic_disk_tier_bytes', "Bytes of the disk tier's files (agents' files and shared-prefix segments).", [], read, (g, live) => g.set(live.disk?.bytes ?? 0));
  gauge(
    registry,
    'semantic_disk_tier_budget_bytes',
    "Bytes the disk tier's files may hold (the agents' 7/8 of --disk-cache-bytes, auto resolved; stored responses have the rest): least recently used files are deleted beyond it.",
    [],
    read,
    (g, live) => g.set(live.disk?.budgetBytes ?? 0),
  );
  gauge(registry, 'semantic_disk_tier_files', "Agents' cache files in the disk tier.", [], read, (g, live) => g.set(live.disk?.files ?? 0));
}

function registerWriterGauges(registry: Registry, read: Read): void {
  gauge(registry, 'semantic_disk_writer_queue_tasks', 'File tasks waiting for the disk writer thread (piscina queueSize).', [], read, (g, live) =>
    g.set(live.disk?.writer().queueSize ?? 0),
  );
  for (const [name, pick] of [
    ['wait', (stats: WriterStats) => stats.waitMs],
    ['run', (stats: WriterStats) => stats.runMs],
  ] as const) {
    gauge(registry, `semantic_disk_writer_${name}_seconds`, `Disk writer tasks' ${name} time: piscina's own percentiles since start (50, 99).`, ['percentile'], read, (g, live) => {
      const stats = live.disk?.writer();
      if (stats === undefined) return;
      g.set({ percentile: '50' }, pick(stats).p50 / 1000);
      g.set({ percentile: '99' }, pick(stats).p99 / 1000);
    });
  }
}
