/**
 * `semantic supervise`: N worker processes on one port. Each worker is the same CLI forked with the
 * hidden `worker` command. The supervisor holds the one listening socket and hands each connection to
 * a ready worker in turn (dispatcher.ts); it loads no model. It starts workers, reads their IPC
 * reports, restarts the ones that exit unexpectedly (restart-policy.ts), replaces them one by one on
 * SIGHUP and drains them all on SIGTERM/SIGINT.
 */
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import { mkdir } from 'node:fs/promises';
import type { Config } from '../shared/config.js';
import { resolvedCacheDir } from '../shared/server-settings.js';
import { cacheDirOf } from '../shared/model-cache-dir.js';
import { modelFingerprint } from '../shared/cache-files.js';
import { ExitCode } from '../shared/exit.js';
import { decideRestart, defaultRestartPolicy, type RestartPolicy, type SlotExit } from './restart-policy.js';
import { ConnectionDispatcher } from './dispatcher.js';
import { WorkerProcess, type WorkerExitStatus } from './worker-process.js';
import { FleetMetrics, type FleetExposition } from './fleet-metrics.js';
import { workerLogFile } from '../shared/logger.js';

export interface SupervisorOptions {
  workers: number;
  /** What every worker runs with; `model` is already resolved, `port` may be 0. */
  workerConfig: Config;
  logger: Logger;
  /** The CLI script to fork, and the arguments that make it a worker. */
  workerScript: string;
  workerArgs: string[];
  restartPolicy?: RestartPolicy;
  /** How long a rolling restart waits for a replacement's `ready`: loading a large model takes minutes. */
  replacementReadyTimeoutMs?: number;
  /** After a forced stop, workers still running this much later are killed. */
  killAfterForceMs?: number;
  /** How long a fleet scrape of GET /metrics waits for each worker's metrics (fleet-metrics.ts); default 3 s. */
  scrapeTimeoutMs?: number;
}

interface Slot {
  index: number;
  worker: WorkerProcess | undefined;
  /** Unexpected exits, oldest first: the restart policy's input. */
  exits: SlotExit[];
  restartTimer: NodeJS.Timeout | undefined;
}

export class Supervisor {
  /**
   * Resolves with the supervisor's exit code: after `stop`, once every worker exited (0 when each
   * drained in full, ExitCode.DrainCut when any drain was cut), or ExitCode.Failure once no worker is
   * left and none will restart (every slot in a crash loop).
   */
  readonly stopped: Promise<number>;
  private readonly slots: Slot[];
  /** Every worker process not yet exited: the slots' workers and a rolling restart's replacement. */
  private readonly live = new Set<WorkerProcess>();
  /** Slots in a crash loop: not restarted until a rolling restart gives them a worker again. */
  private readonly givenUp = new Set<Slot>();
  private readonly log: Logger;
  private readonly policy: RestartPolicy;
  private readonly dispatcher: ConnectionDispatcher;
  private readonly fleetMetrics: FleetMetrics;
  private port: number;
  private stopping = false;
  private forced = false;
  private rolling = false;
  private allReady = false;
  private drainCut = false;
  private killTimer: NodeJS.Timeout | undefined;
  private resolveStopped!: (code: number) => void;
  /** What workers are forked with: the options' config, with the model an admin swap put in place. */
  private workerConfig: Config;

  constructor(private readonly options: SupervisorOptions) {
    this.log = options.logger;
    this.workerConfig = options.workerConfig;
    this.policy = options.restartPolicy ?? defaultRestartPolicy;
    this.port = options.workerConfig.port;
    this.slots = Array.from({ length: options.workers }, (_, index) => ({ index, worker: undefined, exits: [], restartTimer: undefined }));
    this.stopped = new Promise((resolve) => (this.resolveStopped = resolve));
    this.dispatcher = new ConnectionDispatcher(() => [...this.live], this.log);
    const counts = {
      alive: () => this.live.size,
      ready: () => this.slots.filter((slot) => slot.worker?.isReady === true).length,
      crashLooping: () => this.slots.filter((slot) => this.givenUp.has(slot)).length,
    };
    this.fleetMetrics = new FleetMetrics(counts, this.log);
  }

  /** Resolves once every worker is forked (not ready: the "all workers ready" line says that). */
  async start(): Promise<void> {
    const { host } = this.options.workerConfig;
    this.port = await this.dispatcher.listen(host, this.port);
    this.log.info({ host, port: this.port }, 'listening');
    if (this.stopping) return;
    for (const slot of this.slots) slot.worker = this.forkWorker(slot);
  }

  /** Asks every worker, a rolling restart's replacement included, to drain (`shutdown`) at once. */
  stop(reason: string): Promise<number> {
    if (this.stopping) return this.stopped;
    this.stopping = true;
    this.log.info({ reason, workers: this.live.size }, 'draining all workers');
    this.dispatcher.close();
    for (const slot of this.slots) {
      clearTimeout(slot.restartTimer);
      slot.restartTimer = undefined;
    }
    for (const worker of this.live) this.drainWorker(worker, 'shutdown');
    this.finishIfAllExited();
    return this.stopped;
  }

  /**
   * The second signal: SIGTERM to every worker still running, which cuts its drain short (it exits 3
   * with what it could persist); SIGKILL only for those still there `killAfterForceMs` later, or at a
   * third signal.
   */
  force(reason: string): void {
    void this.stop(reason);
    if (this.live.size === 0) return;
    if (this.forced) return this.killRemaining(`${reason} again`);
    this.forced = true;
    this.log.warn({ reason, pids: this.livePids() }, 'forcing the drain: SIGTERM to every worker still running');
    for (const worker of this.live) worker.terminate();
    const killAfterMs = this.options.killAfterForceMs ?? 10_000;
    this.killTimer = setTimeout(() => this.killRemaining(`still running ${killAfterMs} ms after SIGTERM`), killAfterMs);
  }

  /**
   * SIGHUP: replaces the workers one slot at a time. Each replacement must report `ready` before its
   * predecessor is drained in `handover` mode, so the port always has a ready listener. A replacement
   * that fails to start is killed and the rolling restart stops there, the old worker still serving.
   */
  async rollingRestart(): Promise<void> {
    if (this.stopping) {
      this.log.warn('stopping: rolling restart ignored');
      return;
    }
    if (this.rolling) {
      this.log.warn('rolling restart already running: ignored');
      return;
    }
    this.rolling = true;
    try {
      await this.replaceSlots(this.slots);
    } finally {
      this.rolling = false;
    }
  }

  /**
   * A worker's admin API asked for another model (POST /admin/model): a rolling restart onto it, with
   * the rolling restart's guarantee that the old workers serve until their replacements are ready. If a
   * replacement fails to get ready, the config goes back to the old model (later restarts use it) and
   * the workers already replaced are replaced again, onto the old model. Refused while stopping or
   * while a rolling restart runs.
   */
  private onSwapRequest(worker: WorkerProcess, path: string, id: string): void {
    if (this.stopping || this.rolling) return worker.answerSwap(false, this.stopping ? 'the supervisor is stopping' : 'a rolling restart is already running');
    worker.answerSwap(true);
    this.rolling = true;
    void this.swapModel(path, id).finally(() => (this.rolling = false));
  }

  private async swapModel(path: string, id: string): Promise<void> {
    const previous = this.workerConfig;
    try {
      this.workerConfig = await this.configFor(path, id);
    } catch (error) {
      this.fleetMetrics.countSwap('rolled_back');
      return this.log.error({ path, error: (error as Error).message }, 'model swap failed: back to the old model');
    }
    this.log.info({ from: previous.model, to: path, id, cacheDir: this.workerConfig.cacheDir }, 'model swap: rolling restart onto the new model');
    const replaced = await this.replaceSlots(this.slots);
    if (replaced === this.slots.length) {
      this.fleetMetrics.countSwap('ok');
      return this.log.info({ model: id, path }, 'model swapped');
    }
    this.workerConfig = previous;
    if (this.stopping) return;
    this.fleetMetrics.countSwap('rolled_back');
    this.log.error({ path, replaced, backTo: previous.model }, 'model swap failed: back to the old model');
    await this.replaceSlots(this.slots.slice(0, replaced));
  }

  /**
   * The workers' config for another model: its id, and its own cache folder (shared/model-cache-dir.ts),
   * since the new workers start with it: the top of the cache dir stays the original model's.
   */
  private async configFor(path: string, id: string): Promise<Config> {
    const original = this.options.workerConfig;
    const home = resolvedCacheDir(original);
    const [fingerprint, homeFingerprint] = await Promise.all([modelFingerprint(path), modelFingerprint(original.model ?? path)]);
    const cacheDir = cacheDirOf(home, fingerprint, homeFingerprint);
    await mkdir(cacheDir, { recursive: true });
    return { ...this.workerConfig, model: path, modelId: id, cacheDir };
  }

  /** Replaces the slots' workers in order; stops at the first that fails. Returns how many were replaced. */
  private async replaceSlots(slots: Slot[]): Promise<number> {
    this.log.info({ workers: slots.length }, 'rolling restart started');
    let replaced = 0;
    for (const slot of slots) {
      if (!(await this.replaceWorker(slot))) return replaced;
      replaced++;
    }
    this.log.info({ workers: slots.length }, 'rolling restart done');
    return replaced;
  }

  /** True once `slot` is served by a new ready worker and its old one has exited. */
  private async replaceWorker(slot: Slot): Promise<boolean> {
    const replacement = this.forkWorker(slot);
    const timeoutMs = this.options.replacementReadyTimeoutMs ?? 300_000;
    const ready = await readyWithin(replacement, timeoutMs);
    if (this.stopping) return false;
    if (!ready) {
      const reason = replacement.hasExited ? 'it exited before it was ready' : `not ready within ${timeoutMs} ms`;
      this.log.error({ worker: slot.index, pid: replacement.pid, reason, oldPid: slot.worker?.pid }, `rolling restart aborted: ${reason}; the old worker keeps serving`);
      replacement.kill();
      await replacement.exited;
      return false;
    }
    const old = slot.worker;
    clearTimeout(slot.restartTimer);
    // A new start: the exits of the processes it replaces no longer count towards a crash loop.
    Object.assign(slot, { worker: replacement, exits: [], restartTimer: undefined });
    this.givenUp.delete(slot);
    this.logWhenAllReady();
    if (old !== undefined) {
      this.drainWorker(old, 'handover');
      await old.exited;
    }
    this.log.info({ worker: slot.index, oldPid: old?.pid, newPid: replacement.pid }, 'worker replaced');
    return !this.stopping;
  }

  private forkWorker(slot: Slot): WorkerProcess {
    // A rolling restart's replacement runs beside the slot's old worker for a while: another log file.
    const lane = [...this.live].some((worker) => worker.slot === slot.index && worker.lane === 0) ? 1 : 0;
    const { logFile } = this.workerConfig;
    const worker = new WorkerProcess({
      slot: slot.index,
      lane,
      script: this.options.workerScript,
      args: this.options.workerArgs,
      config: { ...this.workerConfig, port: this.port, ...(logFile === undefined ? {} : { logFile: workerLogFile(logFile, slot.index, lane) }) },
      now: () => performance.now(),
      logger: this.log,
      port: this.port,
      onReady: () => {
        this.dispatcher.flush();
        this.logWhenAllReady();
      },
      onSwapRequest: (asking, path, id) => this.onSwapRequest(asking, path, id),
      onMetricsRequest: (asking, id) => void this.answerScrape(asking, id),
    });
    this.live.add(worker);
    this.log.info({ worker: slot.index, pid: worker.pid }, 'worker started');
    void worker.exited.then((status) => this.onWorkerExit(slot, worker, status));
    return worker;
  }

  private logWhenAllReady(): void {
    const allReady = this.slots.every((slot) => slot.worker?.isReady === true);
    if (allReady && !this.allReady) this.log.info({ workers: this.slots.length, port: this.port }, 'all workers ready');
    this.allReady = allReady;
  }

  private onWorkerExit(slot: Slot, worker: WorkerProcess, status: WorkerExitStatus): void {
    this.live.delete(worker);
    const wasCurrent = slot.worker === worker;
    if (wasCurrent) {
      slot.worker = undefined;
      this.allReady = false;
    }
    const ids = { worker: slot.index, pid: worker.pid, code: status.code, signal: status.signal };
    if (worker.drainingMode !== undefined && !drainedInFull(status)) this.fleetMetrics.countDrainCut(worker.drainingMode);
    if (this.stopping) {
      if (!drainedInFull(status)) this.drainCut = true;
      this.log.info({ ...ids, stoppedCode: status.stoppedCode }, 'worker stopped');
      this.finishIfAllExited();
    } else if (worker.isDraining) {
      this.log.info({ ...ids, stoppedCode: status.stoppedCode }, 'worker stopped');
    } else if (wasCurrent) {
      this.log.warn(ids, 'worker exited unexpectedly');
      this.restartLater(slot, worker);
    } else {
      this.log.warn(ids, 'replacement worker exited');
      this.finishIfNoWorkerLeft();
    }
  }

  private restartLater(slot: Slot, worker: WorkerProcess): void {
    slot.exits.push({ at: performance.now(), readyAt: worker.readyAt });
    const decision = decideRestart(slot.exits, this.policy);
    if (!decision.restart) {
      this.givenUp.add(slot);
      this.log.error({ worker: slot.index, exits: decision.exits, reason: decision.reason }, 'crash loop: worker not restarted');
      this.finishIfNoWorkerLeft();
      return;
    }
    this.log.info({ worker: slot.index, delayMs: decision.delayMs, exits: decision.exits }, 'restarting worker');
    slot.restartTimer = setTimeout(() => {
      slot.restartTimer = undefined;
      if (this.stopping || slot.worker !== undefined) return;
      slot.worker = this.forkWorker(slot);
      this.fleetMetrics.countRestart();
    }, decision.delayMs);
  }

  private drainWorker(worker: WorkerProcess, mode: 'shutdown' | 'handover'): void {
    if (!worker.isDraining && !worker.hasExited) this.fleetMetrics.countDrain(mode);
    worker.drain(mode);
  }

  /**
   * A scrape reached `asking`: the whole fleet's metrics go back to it. Ready workers are asked, in slot
   * order, each slot's current process before a replacement's predecessor (their per-worker series keep
   * the current one's values: metric-aggregation.ts).
   */
  private async answerScrape(asking: WorkerProcess, id: number): Promise<void> {
    try {
      const { text, contentType } = await this.scrapeFleet();
      asking.answerMetrics(id, text, contentType);
    } catch (error) {
      this.log.error({ error: (error as Error).message }, 'fleet scrape failed (a bug): the worker answers with its own metrics');
      asking.answerMetrics(id, '', 'text/plain', (error as Error).message);
    }
  }

  /** The fleet's exposition now: what a scrape of GET /metrics answers (also after the last worker exited). */
  scrapeFleet(): Promise<FleetExposition> {
    const current = (worker: WorkerProcess): number => (this.slots[worker.slot]?.worker === worker ? 0 : 1);
    const sources = [...this.live].filter((worker) => worker.isReady).sort((a, b) => a.slot - b.slot || current(a) - current(b));
    return this.fleetMetrics.scrape(sources, this.options.scrapeTimeoutMs ?? 3000);
  }

  private killRemaining(reason: string): void {
    if (this.live.size === 0) return;
    this.log.error({ reason, pids: this.livePids() }, 'killing the workers still running');
    for (const worker of this.live) worker.kill();
  }

  private livePids(): (number | undefined)[] {
    return [...this.live].map((worker) => worker.pid);
  }

  private finishIfAllExited(): void {
    if (this.live.size > 0) return;
    clearTimeout(this.killTimer);
    this.resolveStopped(this.drainCut ? ExitCode.DrainCut : ExitCode.Ok);
  }

  /** No worker runs, none waits to restart and none is starting: nothing will ever serve again. */
  private finishIfNoWorkerLeft(): void {
    if (this.live.size > 0 || this.slots.some((slot) => slot.restartTimer !== undefined)) return;
    this.stopping = true;
    this.dispatcher.close();
    this.log.error({ workers: this.slots.length }, 'no worker left: every worker is in a crash loop');
    this.resolveStopped(ExitCode.Failure);
  }
}

/** A drain that ran to its end: the worker reported code 0 and exited 0. */
function drainedInFull(status: WorkerExitStatus): boolean {
  return status.code === 0 && (status.stoppedCode ?? 0) === 0;
}

/** Whether `worker` reports `ready` within `timeoutMs` (false when it exits first). */
async function readyWithin(worker: WorkerProcess, timeoutMs: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), timeoutMs)));
  try {
    return await Promise.race([worker.ready, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
