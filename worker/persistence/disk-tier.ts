/**
 * The disk tier: one safetensors file per agent in the cache dir, written behind each completed turn
 * by a piscina thread and read back when the agent returns, across restarts. At startup the dir is
 * indexed by name, size and mtime; files are verified when read. The files are kept under a byte
 * budget, least recently used deleted first (DiskIndex), so the dir cannot fill the disk.
 */
import { existsSync } from 'node:fs';
import { mkdir, readdir, rm, stat } from 'node:fs/promises';
import { resolve, sep } from 'node:path';
import { Piscina } from 'piscina';
import type { CacheMetadata } from './cache-file.js';
import { agentIdOfFileName, cacheFileName } from '../../shared/cache-files.js';
import type { HeaderResult, HeaderTask, InspectResult, InspectTask, QuarantineTask, ReadTask, RebaseTask, WriteResult, WriteTask } from './cache-task.js';
import type { FileSpan } from '../engine/addon.js';
import { keptLogits } from '../engine/kv/hot-cache.js';
import { DiskIndex, type DiskEntry } from './disk-index.js';
import { DiskSegments, type DiskSegment, type SegmentPlan } from './disk-segments.js';
import { epochMs, type WriteTracing } from '../tracing/timeline.js';

/** A write planned before its state is exported (DiskTier.planWrite). */
export interface PlannedWrite {
  agentId: string;
  tokens: Int32Array;
  shareScope: string | undefined;
  plan: SegmentPlan | undefined;
  /** Cells before this position are in the plan's segment file already (0: the state must hold them all). */
  ownFrom: number;
}

export class DiskTier {
  private readonly ledger: DiskIndex;
  /** Shared prefixes stored once, in segments/ (disk-segments.ts). */
  private readonly segments: DiskSegments;
  private readonly startedAt = Date.now();
  private readonly pool = new Piscina({ filename: new URL('./cache-task.js', import.meta.url).href, maxThreads: 1, idleTimeout: 60_000 });
  /** Each agent's last pending file operation: the next one starts after it settles. */
  private readonly tails = new Map<string, Promise<unknown>>();
  private closing = false;
  /**
   * Settles once the token counts of the files found at startup are known (headers read one at a
   * time in the background, after index()): until then the Agents API lists them with tokens null.
   */
  tokensLearned: Promise<void> = Promise.resolve();
  /** Told the tokens and sharing scope of each file found at startup, as its header is read. */
  onLearned: (agentId: string, tokens: Int32Array, shareScope: string | undefined) => void = () => undefined;
  /**
   * Told of each write or rewrite that failed (a full or read-only dir, the file thread dying): the
   * agent keeps its previous file or none, a later miss, never a wrong answer; the server still serves.
   */
  onWriteFailed: (agentId: string, error: unknown) => void = () => undefined;
  /** Set while tracing is possible: a traced turn's write carries its trace into the piscina task and comes back as a span. */
  tracing: WriteTracing | undefined;
  /** Metrics (worker/engine/metrics.ts): a file write landed (`startedMs`: when it was asked for), files quarantined, files evicted by the budget. */
  onWriteTimed: (startedMs: number) => void = () => undefined;
  onQuarantined: () => void = () => undefined;
  onEvicted: (files: number) => void = () => undefined;

  /** `budgetBytes` 0 turns the tier off: nothing is indexed, written or read. */
  constructor(
    private readonly dir: string,
    private readonly model: string,
    private readonly kvType: string,
    private readonly vTransposed: boolean,
    budgetBytes: number,
    prefixBlockTokens = 16,
  ) {
    this.segments = new DiskSegments(prefixBlockTokens, 4 * prefixBlockTokens, (name) => this.deleteSegment(name));
    this.ledger = new DiskIndex(budgetBytes, Date.now, () => this.segments.bytes);
    this.ledger.onRemoved = (agentId) => this.segments.fileGone(agentId);
  }

  /** The writer thread's pool: tasks queued, and piscina's own wait and run time summaries (ms). */
  writerStats(): { queueSize: number; waitMs: { p50: number; p99: number }; runMs: { p50: number; p99: number } } {
    const { waitTime, runTime } = this.pool.histogram;
    return { queueSize: this.pool.queueSize, waitMs: { p50: waitTime.p50, p99: waitTime.p99 }, runMs: { p50: runTime.p50, p99: runTime.p99 } };
  }

  /** Bytes of the agents' files and of the shared segments. */
  get bytes(): number {
    return this.ledger.bytes + this.segments.bytes;
  }

  /** Bytes of the shared-prefix segments alone (each agent's entry counts only its own file). */
  get sharedBytes(): number {
    return this.segments.bytes;
  }

  get size(): number {
    return this.ledger.size;
  }

  get budgetBytes(): number {
    return this.ledger.budgetBytes;
  }

  /** The agents with a file, least recently used first. */
  entries(): DiskEntry[] {
    return this.ledger.entries();
  }

  /**
   * Creates the dir and learns each agent file's size and mtime; trims to the budget if it shrank.
   * Also starts the file thread (an inspection of nothing): the first agent to return after a
   * restart should not wait for a thread to start and load its module (tens of ms).
   */
  async index(): Promise<number> {
    if (this.off) return 0;
    await mkdir(this.dir, { recursive: true });
    await this.pool.run({ op: 'inspect', path: resolve(this.dir, '.warm-up'), ...this.metadata('') } satisfies InspectTask);
    const found = await Promise.all((await readdir(this.dir)).map((name) => this.statEntry(name)));
    this.evict(this.ledger.restore(found.filter((entry) => entry !== undefined)));
    this.tokensLearned = this.learnTokens();
    return this.ledger.size;
  }

  /** One header read per file whose token count is unknown, most recently used first, in each agent's file order. */
  private async learnTokens(): Promise<void> {
    const unknown = this.ledger
      .entries()
      .filter((entry) => entry.tokens === undefined)
      .reverse();
    for (const { agentId } of unknown) {
      if (this.closing) return;
      const task: HeaderTask = { op: 'header', path: this.pathOf(agentId), segmentsDir: this.segmentsDir, ...this.metadata(agentId) };
      const found = await this.serial(agentId, async () => (this.ledger.has(agentId) ? ((await this.pool.run(task)) as HeaderResult | null) : null)).catch(() => null);
      if (found === null || this.ledger.hasTokens(agentId)) continue;
      this.ledger.noteTokens(agentId, found.tokens.length);
      this.segments.fileWritten(agentId, found.shareScope, found.tokens, found.segment);
      this.onLearned(agentId, found.tokens, found.shareScope);
    }
    if (!this.closing) await this.deleteOrphanSegments();
  }

  /** Segment files no agent file uses (their last user went while the server was down); not one written since startup. */
  private async deleteOrphanSegments(): Promise<void> {
    const names = await readdir(this.segmentsDir).catch(() => [] as string[]);
    for (const file of names.filter((n) => n.endsWith('.safetensors'))) {
      const name = file.slice(0, -'.safetensors'.length);
      const stats = await stat(resolve(this.segmentsDir, file)).catch(() => undefined);
      if (stats !== undefined && stats.mtimeMs < this.startedAt && this.segments.isOrphan(name)) this.deleteSegment(name);
    }
  }

  has(agentId: string): boolean {
    return this.ledger.has(agentId);
  }

  /**
   * Whether the agent may have a file: indexed here, or written since startup by another process
   * sharing the dir (the workers of `semantic supervise`, a replaced worker's drain in a rolling
   * restart). One stat per returning agent that no tier holds, on the way to a miss's prefill.
   */
  mayHave(agentId: string): boolean {
    return !this.off && (this.ledger.has(agentId) || existsSync(this.pathOf(agentId)));
  }

  /**
   * Write-behind: the state's buffer is transferred to the writer thread, not copied. Resolves to the
   * bytes written; 0 when the state alone exceeds the budget: it could only be kept by evicting
   * itself, and the agent's older file goes too, since the agent has moved on from the turn it holds.
   */
  persist(agentId: string, tokens: Int32Array, state: Uint8Array, logits: Float32Array = new Float32Array(0), shareScope?: string): Promise<number> {
    const planned = this.planWrite(agentId, tokens, shareScope);
    return planned === undefined ? Promise.resolve(0) : this.writePlanned(planned, state, logits, false);
  }

  /**
   * Plans a write before its state is exported: where its first cells go, and from which position
   * on the state needs to hold cells at all (`ownFrom` > 0: they sit in a segment file already
   * written, which the plan keeps from being deleted until the write settles). Undefined: no tier.
   * Every plan ends in writePlanned or cancel.
   */
  planWrite(agentId: string, tokens: Int32Array, shareScope?: string): PlannedWrite | undefined {
    if (this.off) return undefined;
    const plan = this.segments.plan(agentId, shareScope, tokens);
    const ownFrom = plan !== undefined && plan.partner === undefined && plan.segment.bytes > 0 ? plan.segment.tokens.length : 0;
    return { agentId, tokens, shareScope, plan, ownFrom };
  }

  /** A plan whose state could not be exported: nothing is written. */
  cancel(planned: PlannedWrite): void {
    if (planned.plan === undefined) return;
    this.segments.settled(planned.plan.segment);
    if (planned.plan.partner !== undefined) this.segments.settled(planned.plan.segment);
  }

  /**
   * `state`: one state, or the pieces of one in position order (joined by the writer thread).
   * `ownCellsOnly`: the state holds only the cells from `planned.ownFrom` on (the rest are in the segment).
   */
  writePlanned(planned: PlannedWrite, state: Uint8Array | readonly Uint8Array[], allLogits: Float32Array, ownCellsOnly: boolean): Promise<number> {
    const { agentId, tokens, shareScope, plan } = planned;
    const pieces = state instanceof Uint8Array ? [state] : [...state];
    const stateBytes = pieces.reduce((n, piece) => n + piece.byteLength, 0);
    const logits = keptLogits(allLogits, stateBytes);
    if (!this.ledger.fits(tokens.byteLength + logits.byteLength + stateBytes)) {
      this.cancel(planned);
      this.delete([agentId]);
      return Promise.resolve(0);
    }
    const segment = plan === undefined ? undefined : this.segmentTarget(plan.segment);
    const trace = this.tracing?.takeWriteTrace(agentId);
    const task: WriteTask = { op: 'write', path: this.pathOf(agentId), ...this.metadata(agentId), tokens, logits, state: pieces, shareScope, segment, ownCellsOnly, trace };
    const queuedAt = epochMs();
    this.ledger.writeStarted(agentId);
    const asked = performance.now();
    const written = this.serial(agentId, async () => {
      let result: WriteResult | undefined;
      try {
        result = (await this.pool.run(task, { transferList: pieces.map((piece) => piece.buffer as ArrayBuffer) })) as WriteResult;
        this.onWriteTimed(asked);
        this.segments.fileWritten(agentId, shareScope, tokens, result.segment);
        if (trace !== undefined && result.ran !== undefined) this.tracing?.written(agentId, trace, queuedAt, result.ran, result.bytes);
        return result.bytes;
      } catch (error) {
        this.onWriteFailed(agentId, error);
        throw error;
      } finally {
        if (plan !== undefined) this.segments.settled(plan.segment);
        this.evict(this.ledger.writeEnded(agentId, result?.bytes, tokens.length));
      }
    });
    if (plan?.partner !== undefined) this.rebase(plan.partner, plan.segment);
    return written;
  }

  /** Rewrites an older file of the same prefix onto a new segment, keeping only its own cells. */
  private rebase(agentId: string, segment: DiskSegment): void {
    const task: RebaseTask = { op: 'rebase', path: this.pathOf(agentId), ...this.metadata(agentId), segment: this.segmentTarget(segment), expected: segment.tokens };
    this.ledger.writeStarted(agentId);
    void this.serial(agentId, async () => {
      let result: WriteResult | null = null;
      try {
        result = (await this.pool.run(task)) as WriteResult | null;
        if (result !== null && this.ledger.has(agentId)) this.segments.fileWritten(agentId, segment.scope, segment.tokens, result.segment);
      } catch (error) {
        this.onWriteFailed(agentId, error);
        throw error;
      } finally {
        this.segments.settled(segment);
        this.ledger.writeEnded(agentId, undefined);
        if (result !== null) this.evict(this.ledger.resize(agentId, result.bytes));
      }
    }).catch(() => undefined);
  }

  private segmentTarget(segment: DiskSegment): { segment: string; tokens: number; path: string } {
    return { segment: segment.name, tokens: segment.tokens.length, path: resolve(this.segmentsDir, `${segment.name}.safetensors`) };
  }

  private get segmentsDir(): string {
    return resolve(this.dir, 'segments');
  }

  /** A segment no file uses any more: its file goes, after the writes asked for before (one queue for all segments). */
  private deleteSegment(name: string): void {
    void this.serial('.segments', () => rm(resolve(this.segmentsDir, `${name}.safetensors`), { force: true }).catch(() => undefined));
  }

  /**
   * The agent's tokens and where its state lies in its file, checked but for the checksum, which the
   * addon verifies as it imports from a mapping of the file (no copy into memory). Null: no file, or a
   * bad one, now quarantined.
   */
  inspect(agentId: string): Promise<{ tokens: Int32Array; logits: Float32Array; file: FileSpan; onSegment: boolean } | null> {
    if (this.off) return Promise.resolve(null);
    this.ledger.touch(agentId);
    const path = this.pathOf(agentId);
    const task: InspectTask = { op: 'inspect', path, ...this.metadata(agentId) };
    return this.serial(agentId, async () => {
      const result = (await this.pool.run(task)) as InspectResult;
      if ('tokens' in result) {
        if (!this.ledger.has(agentId)) this.evict(this.ledger.adopt(agentId, result.layout.fileBytes));
        this.ledger.noteTokens(agentId, result.tokens.length);
        return { tokens: result.tokens, logits: result.logits, file: { path, ...result.layout }, onSegment: result.layout.prefix !== undefined };
      }
      if ('quarantined' in result) this.onQuarantined();
      this.ledger.remove(agentId);
      return null;
    });
  }

  /**
   * The agent's whole state, checksum checked (ReadTask): for importing only a prefix of another
   * agent's file. Null: no file, or a bad one, now quarantined.
   */
  readState(agentId: string): Promise<Uint8Array | null> {
    if (this.off) return Promise.resolve(null);
    this.ledger.touch(agentId);
    const task: ReadTask = { op: 'read', path: this.pathOf(agentId), segmentsDir: this.segmentsDir, ...this.metadata(agentId) };
    return this.serial(agentId, async () => {
      const state = (await this.pool.run(task)) as Uint8Array | null;
      if (state === null) this.ledger.remove(agentId);
      return state;
    });
  }

  /**
   * Deletes the agent's file after its pending writes land (a write settling later would put it back
   * in the index); resolves once it is gone. False: the agent had no file.
   */
  async forget(agentId: string): Promise<boolean> {
    await this.settled(agentId);
    const had = this.mayHave(agentId);
    this.delete([agentId]);
    await this.settled(agentId);
    return had;
  }

  /** Resolves once the agent's file operations asked for so far have settled. */
  async settled(agentId: string): Promise<void> {
    await this.tails.get(agentId);
  }

  /** Moves a file the addon found bad (checksum) to quarantine/: it is never read again. */
  quarantine(agentId: string): Promise<void> {
    this.ledger.remove(agentId);
    this.onQuarantined();
    const task: QuarantineTask = { op: 'quarantine', path: this.pathOf(agentId) };
    return this.serial(agentId, () => this.pool.run(task) as Promise<void>);
  }

  /** Resolves once every file operation asked for so far (and any they queued) has settled. */
  async flush(): Promise<void> {
    while (this.tails.size > 0) await Promise.all(this.tails.values());
  }

  /** piscina's close() may reject queued tasks: our own queue is drained first. */
  async close(): Promise<void> {
    this.closing = true;
    await this.tokensLearned;
    await this.flush();
    await this.pool.close();
  }

  private get off(): boolean {
    return this.ledger.budgetBytes === 0;
  }

  private async statEntry(name: string): Promise<DiskEntry | undefined> {
    const agentId = agentIdOfFileName(name);
    if (agentId === undefined) return undefined;
    const stats = await stat(this.pathOf(agentId)).catch(() => undefined);
    return stats?.isFile() === true ? { agentId, bytes: stats.size, lastUsed: stats.mtimeMs } : undefined;
  }

  /** Files the budget pushed out (least recently used first): deleted, and counted as evictions. */
  private evict(agentIds: string[]): void {
    if (agentIds.length > 0) this.onEvicted(agentIds.length);
    this.delete(agentIds);
  }

  /** Drops the agents from the index now and deletes their files in turn; a failed delete is ignored. */
  private delete(agentIds: string[]): void {
    for (const agentId of agentIds) {
      this.ledger.remove(agentId);
      void this.serial(agentId, () => rm(this.pathOf(agentId), { force: true }).catch(() => undefined));
    }
  }

  /**
   * Runs an agent's file operations one after another in call order, so a delete can never land on
   * a file a later write just renamed into place, and a load sees the writes asked for before it.
   */
  private serial<T>(agentId: string, operation: () => Promise<T>): Promise<T> {
    const result = (this.tails.get(agentId) ?? Promise.resolve()).then(operation);
    const tail = result.catch(() => undefined);
    this.tails.set(agentId, tail);
    void tail.then(() => {
      if (this.tails.get(agentId) === tail) this.tails.delete(agentId);
    });
    return result;
  }

  private metadata(agentId: string): CacheMetadata {
    return { agentId, model: this.model, kvType: this.kvType, vTransposed: this.vTransposed };
  }

  private pathOf(agentId: string): string {
    const path = resolve(this.dir, cacheFileName(agentId));
    if (!path.startsWith(resolve(this.dir) + sep)) throw new Error(`agent id ${agentId} would leave the cache dir`);
    return path;
  }
}
