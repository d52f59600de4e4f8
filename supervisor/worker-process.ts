/**
 * One forked worker process as the supervisor sees it: its IPC reports (validated and logged here),
 * whether it became ready, whether it was asked to drain, and how it ended. The supervisor decides what
 * an exit means; this class only records it.
 */
import { fork, type ChildProcess } from 'node:child_process';
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import { isInvalid, parseWorkerMessage, sendConnectionToWorker, sendToWorker, workerConfigEnv, type DrainMode, type WorkerMessage } from '../shared/protocol/ipc.js';
import type { ConnectionTarget } from './dispatcher.js';
import type { MetricFamilyJson } from '../shared/metric-aggregation.js';
import type { MetricsSource, MissedReport } from './fleet-metrics.js';

export interface WorkerExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** The code the worker reported in `stopped` right before exiting; undefined when it sent none. */
  stoppedCode: number | undefined;
}

export interface ForkWorkerOptions {
  slot: number;
  /** Which of the slot's two log files it writes (logger.ts `workerLogFile`): 1 while the slot's previous worker still runs. */
  lane: 0 | 1;
  script: string;
  args: string[];
  /** Resolved config for the worker, passed in its environment (ipc.ts says why). */
  config: object;
  /** Milliseconds on the supervisor's clock, for the restart policy. */
  now(): number;
  logger: Logger;
  /** The worker's port as the supervisor chose it: a worker that reports another one is a bug. */
  port: number;
  onReady(worker: WorkerProcess): void;
  /** Its admin API asked for another model; answer with `answerSwap`. */
  onSwapRequest(worker: WorkerProcess, path: string, id: string): void;
  /** A scrape of GET /metrics reached it: answer with the fleet's exposition (`answerMetrics`). */
  onMetricsRequest(worker: WorkerProcess, id: number): void;
}

export class WorkerProcess implements ConnectionTarget, MetricsSource {
  readonly slot: number;
  readonly lane: 0 | 1;
  readonly pid: number | undefined;
  /** True once it became ready, false if it exited before. */
  readonly ready: Promise<boolean>;
  readonly exited: Promise<WorkerExitStatus>;
  private readonly child: ChildProcess;
  private readonly log: Logger;
  private drainMode: DrainMode | undefined;
  /** Its `drain` waits for its first IPC message: one sent before its listener is attached is lost. */
  private heardFrom = false;
  private isExited = false;
  private stoppedCode: number | undefined;
  private readyTime: number | undefined;
  /** `collect_metrics` asks waiting for their `metrics_report`, by id. */
  private readonly metricsAsks = new Map<number, (report: MetricFamilyJson[] | MissedReport) => void>();
  private nextMetricsAsk = 0;

  constructor(private readonly options: ForkWorkerOptions) {
    this.slot = options.slot;
    this.lane = options.lane;
    this.log = options.logger;
    this.child = fork(options.script, options.args, {
      env: { ...process.env, ...mallocArenaDefault(process.env), [workerConfigEnv]: JSON.stringify(options.config) },
      // Workers write their JSON log lines straight to our stdout: one stream for the whole service.
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      // Their own process group: a terminal's Ctrl-C reaches the supervisor alone, which drains each
      // worker once; a SIGINT to every process would reach each worker twice, and a second request forces.
      detached: true,
    });
    this.pid = this.child.pid;
    let resolveReady!: (ready: boolean) => void;
    this.ready = new Promise((resolve) => (resolveReady = resolve));
    // 'close', not 'exit': it waits for the IPC channel to close too, so every report was read.
    this.exited = new Promise((resolve) => {
      this.child.once('close', (code: number | null, signal: NodeJS.Signals | null) => {
        this.isExited = true;
        resolveReady(false);
        for (const settle of this.metricsAsks.values()) settle('exited');
        resolve({ code, signal, stoppedCode: this.stoppedCode });
      });
    });
    this.child.on('message', (raw: unknown) => this.onMessage(raw, resolveReady));
    // A failed fork, send or kill: logged, never an unhandled 'error' that takes the supervisor down.
    this.child.on('error', (error) => this.log.error({ worker: this.slot, pid: this.pid, error: error.message }, 'worker process error'));
  }

  /** When it reported `ready`, on the `now` clock; undefined while it has not. */
  get readyAt(): number | undefined {
    return this.readyTime;
  }

  get isReady(): boolean {
    return this.readyTime !== undefined && !this.isExited;
  }

  get hasExited(): boolean {
    return this.isExited;
  }

  get isDraining(): boolean {
    return this.drainMode !== undefined;
  }

  /** The mode it was asked to drain in; undefined when it was not. */
  get drainingMode(): DrainMode | undefined {
    return this.drainMode;
  }

  /** Ready and not asked to drain: new client connections may go to it. */
  get acceptsConnections(): boolean {
    return this.isReady && this.drainMode === undefined;
  }

  sendConnection(socket: Socket): boolean {
    return !this.isExited && sendConnectionToWorker(this.child, socket);
  }

  /** Asks it to drain and exit, once; later calls keep the first mode (a second request would force). */
  drain(mode: DrainMode): void {
    if (this.drainMode !== undefined || this.isExited) return;
    this.drainMode = mode;
    if (this.heardFrom) this.sendDrain(mode);
  }

  /** SIGTERM to a worker asked to drain cuts its drain short: it ends running requests and exits 3. */
  terminate(): void {
    if (!this.isExited) this.child.kill('SIGTERM');
  }

  /** Tells it whether its model swap request was accepted. */
  answerSwap(accepted: boolean, reason?: string): void {
    sendToWorker(this.child, { type: 'swap_answer', accepted, ...(reason === undefined ? {} : { reason }) });
  }

  /** Asks for its metrics JSON; settles with why not when it does not answer within `timeoutMs` or exits first. */
  collectMetrics(timeoutMs: number): Promise<MetricFamilyJson[] | MissedReport> {
    if (this.isExited) return Promise.resolve('exited');
    const id = this.nextMetricsAsk++;
    return new Promise((resolve) => {
      const timer = setTimeout(() => settle('timeout'), timeoutMs);
      const settle = (report: MetricFamilyJson[] | MissedReport): void => {
        clearTimeout(timer);
        this.metricsAsks.delete(id);
        resolve(report);
      };
      this.metricsAsks.set(id, settle);
      if (!sendToWorker(this.child, { type: 'collect_metrics', id })) settle('unsent');
    });
  }

  /** The fleet's exposition, for its `metrics_request` `id`. */
  answerMetrics(id: number, text: string, contentType: string, error?: string): void {
    sendToWorker(this.child, { type: 'metrics_answer', id, text, contentType, ...(error === undefined ? {} : { error }) });
  }

  kill(): void {
    if (!this.isExited) this.child.kill('SIGKILL');
  }

  private sendDrain(mode: DrainMode): void {
    // False when the channel is closed: the worker is exiting already, and its 'close' follows. A
    // SIGTERM instead would cut short a drain it may have begun on its own.
    sendToWorker(this.child, { type: 'drain', mode });
  }

  private onMessage(raw: unknown, resolveReady: (ready: boolean) => void): void {
    if (!this.heardFrom) {
      this.heardFrom = true;
      if (this.drainMode !== undefined) this.sendDrain(this.drainMode);
    }
    const message = parseWorkerMessage(raw);
    if (isInvalid(message)) {
      this.log.error({ worker: this.slot, pid: this.pid, reason: message.invalid }, 'invalid IPC message from a worker (a bug)');
      return;
    }
    if (message.type === 'ready') {
      this.readyTime = this.options.now();
      resolveReady(true);
    }
    this.report(message);
  }

  private report(message: WorkerMessage): void {
    const ids = { worker: this.slot, pid: this.pid };
    switch (message.type) {
      case 'starting':
        return;
      case 'listening':
        if (message.port !== this.options.port) this.log.error({ ...ids, port: message.port, expected: this.options.port }, 'worker listens on another port (a bug)');
        return;
      case 'ready':
        this.log.info({ ...ids, model: message.model }, 'worker ready');
        this.options.onReady(this);
        return;
      case 'engine_dead':
        this.log.error({ ...ids, error: message.error }, 'worker engine dead');
        return;
      case 'draining':
        this.log.info({ ...ids, mode: this.drainMode }, 'worker draining');
        return;
      case 'stopped':
        this.stoppedCode = message.code;
        this.log.info({ ...ids, code: message.code, cut: message.cut }, 'worker drained');
        return;
      case 'metrics_request':
        return this.options.onMetricsRequest(this, message.id);
      case 'metrics_report':
        // An answer after its ask timed out finds no one waiting: dropped.
        return this.metricsAsks.get(message.id)?.(message.metrics);
      case 'swap_model':
        this.log.info({ ...ids, path: message.path, id: message.id }, 'model swap asked for');
        return this.options.onSwapRequest(this, message.path, message.id);
    }
  }
}

/**
 * glibc gives each thread that contends for malloc an arena of its own, up to 8 per core, and each keeps
 * its freed pages: a worker's threads (the front, the inference thread, llama.cpp's, piscina's, libuv's)
 * then hold more resident memory the longer they run. Two arenas: about 20 MiB (6 %) less RSS per worker
 * in the soak with the same throughput (docs/reliability.md, "Soak"). An operator's own value wins;
 * other C libraries ignore the variable.
 */
function mallocArenaDefault(env: NodeJS.ProcessEnv): { MALLOC_ARENA_MAX?: string } {
  return env.MALLOC_ARENA_MAX === undefined ? { MALLOC_ARENA_MAX: '2' } : {};
}
