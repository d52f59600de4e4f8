/**
 * `semantic supervise`: N worker processes on one port. Each worker is the same CLI forked with the
 * hidden `worker` command; the kernel spreads new connections over them (uWebSockets.js listens with
 * SO_REUSEPORT on Linux). The supervisor holds no sockets and loads no model: it starts workers, reads
 * their IPC messages, restarts the ones that exit unexpectedly and stops them all on SIGTERM/SIGINT.
 *
 * `port: 0` is resolved here, to a port the OS reports free, before any worker is forked: uSockets
 * sets SO_REUSEPORT only on a listener bound to a non-zero port (measured: a worker bound to port 0
 * gets a port nobody else can join), and every worker must bind the same port anyway.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import type { Logger } from 'pino';
import type { Config } from '../shared/config.js';
import { isInvalid, parseWorkerMessage, sendToWorker, workerConfigEnv, type WorkerMessage } from './ipc.js';
import { restartDelay } from './restart-policy.js';

export interface SupervisorOptions {
  workers: number;
  /** What every worker runs with; `model` is already resolved, `port` may be 0. */
  workerConfig: Config;
  logger: Logger;
  /** The CLI script to fork, and the arguments that make it a worker. */
  workerScript: string;
  workerArgs: string[];
}

interface Slot {
  index: number;
  child: ChildProcess | undefined;
  ready: boolean;
  exits: number;
  restartTimer: NodeJS.Timeout | undefined;
}

export class Supervisor {
  /** Resolves once `stop` was called and every worker has exited. */
  readonly stopped: Promise<void>;
  private readonly slots: Slot[];
  private readonly log: Logger;
  private port: number;
  private stopping = false;
  private allReady = false;
  private resolveStopped!: () => void;

  constructor(private readonly options: SupervisorOptions) {
    this.log = options.logger;
    this.port = options.workerConfig.port;
    this.slots = Array.from({ length: options.workers }, (_, index) => ({ index, child: undefined, ready: false, exits: 0, restartTimer: undefined }));
    this.stopped = new Promise((resolve) => (this.resolveStopped = resolve));
  }

  /** Resolves once every worker is forked (not ready: the "all workers ready" line says that). */
  async start(): Promise<void> {
    if (this.port === 0) this.port = await freePort(this.options.workerConfig.host);
    if (!this.stopping) this.forkMissingWorkers();
  }

  /**
   * Tells every worker to drain (for now: close and exit) and resolves when all have exited. A second
   * call (a second signal) kills the workers that are still there.
   */
  stop(reason: string): Promise<void> {
    if (this.stopping) {
      this.log.warn({ reason }, 'killing the workers still running');
      for (const slot of this.slots) slot.child?.kill('SIGKILL');
      return this.stopped;
    }
    this.stopping = true;
    for (const slot of this.slots) {
      clearTimeout(slot.restartTimer);
      const child = slot.child;
      if (child !== undefined && !sendToWorker(child, { type: 'drain', mode: 'shutdown' })) child.kill('SIGTERM');
    }
    this.resolveIfAllExited();
    return this.stopped;
  }

  private forkMissingWorkers(): void {
    for (const slot of this.slots) {
      if (slot.child === undefined && slot.restartTimer === undefined) this.forkWorker(slot);
    }
  }

  private forkWorker(slot: Slot): void {
    const config = { ...this.options.workerConfig, port: this.port };
    const child = fork(this.options.workerScript, this.options.workerArgs, {
      env: { ...process.env, [workerConfigEnv]: JSON.stringify(config) },
      // Workers write their JSON log lines straight to our stdout: one stream for the whole service.
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    slot.child = child;
    slot.ready = false;
    this.log.info({ worker: slot.index, pid: child.pid }, 'worker started');
    child.on('message', (raw: unknown) => this.onWorkerMessage(slot, child, raw));
    child.once('exit', (code, signal) => this.onWorkerExit(slot, child, code, signal));
  }

  private onWorkerMessage(slot: Slot, child: ChildProcess, raw: unknown): void {
    const message = parseWorkerMessage(raw);
    if (isInvalid(message)) {
      this.log.error({ worker: slot.index, pid: child.pid, reason: message.invalid }, 'invalid IPC message from a worker (a bug)');
      return;
    }
    this.handleWorkerMessage(slot, child, message);
  }

  private handleWorkerMessage(slot: Slot, child: ChildProcess, message: WorkerMessage): void {
    switch (message.type) {
      case 'listening':
        if (message.port !== this.port) this.log.error({ worker: slot.index, pid: child.pid, port: message.port, expected: this.port }, 'worker listens on another port (a bug)');
        return;
      case 'ready':
        slot.ready = true;
        this.log.info({ worker: slot.index, pid: child.pid, model: message.model }, 'worker ready');
        this.logWhenAllReady();
        return;
      case 'engine_dead':
        this.log.error({ worker: slot.index, pid: child.pid, error: message.error }, 'worker engine dead');
        return;
    }
  }

  private logWhenAllReady(): void {
    const allReady = this.slots.every((slot) => slot.ready);
    if (allReady && !this.allReady) this.log.info({ workers: this.slots.length, port: this.port }, 'all workers ready');
    this.allReady = allReady;
  }

  private onWorkerExit(slot: Slot, child: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    const wasReady = slot.ready;
    slot.child = undefined;
    slot.ready = false;
    this.allReady = false;
    if (this.stopping) {
      this.log.info({ worker: slot.index, pid: child.pid, code, signal }, 'worker stopped');
      this.resolveIfAllExited();
      return;
    }
    slot.exits += 1;
    this.log.warn({ worker: slot.index, pid: child.pid, code, signal }, 'worker exited unexpectedly');
    const delayMs = restartDelay({ slot: slot.index, code, signal, wasReady, exitsInSlot: slot.exits });
    if (delayMs === null) {
      this.log.error({ worker: slot.index, exits: slot.exits }, 'not restarting worker');
      return;
    }
    this.log.info({ worker: slot.index, delayMs }, 'restarting worker');
    slot.restartTimer = setTimeout(() => {
      slot.restartTimer = undefined;
      if (!this.stopping) this.forkMissingWorkers();
    }, delayMs);
  }

  private resolveIfAllExited(): void {
    if (this.slots.every((slot) => slot.child === undefined)) this.resolveStopped();
  }
}

/**
 * A port the OS considers free on `host` right now. Another process could take it before the workers
 * bind it; for `port: 0` (tests, ad-hoc runs) that window is accepted.
 */
function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, host, () => {
      const address = probe.address();
      probe.close(() => (typeof address === 'object' && address !== null ? resolve(address.port) : reject(new Error('no port from the probe socket'))));
    });
  });
}
