/**
 * The supervisor's one listening socket. It accepts each connection without reading from it and hands
 * it to a worker that is ready and not draining, in turn (what Node's `cluster` does by default on
 * Linux). Workers never bind the port themselves.
 *
 * Why not a listener per worker with SO_REUSEPORT, as with uWebSockets.js: Node 20's `net` cannot set
 * it, and one shared queue is better anyway. A draining worker simply gets no new connections, so
 * none is left queued on a socket about to close (no `net.ipv4.tcp_migrate_req` needed), and a
 * connection that arrives while no worker is ready waits here instead of being refused.
 */
import { createServer, type Server, type Socket } from 'node:net';
import type { Logger } from 'pino';

/** A worker as the dispatcher sees it. */
export interface ConnectionTarget {
  readonly acceptsConnections: boolean;
  /** False when the connection could not be handed over (the worker is gone). */
  sendConnection(socket: Socket): boolean;
}

/** How many connections may wait for a ready worker, and for how long, before they are closed. */
export const MAX_WAITING_CONNECTIONS = 1024;
export const WAITING_CONNECTION_MS = 30_000;

interface WaitingConnection {
  socket: Socket;
  timer: NodeJS.Timeout;
}

export class ConnectionDispatcher {
  private readonly server: Server;
  private readonly waiting: WaitingConnection[] = [];
  private next = 0;

  constructor(
    private readonly targets: () => readonly ConnectionTarget[],
    private readonly log: Logger,
  ) {
    this.server = createServer({ pauseOnConnect: true, noDelay: true }, (socket) => this.dispatch(socket));
    this.server.on('error', (error) => this.log.error({ error: error.message }, 'listening socket error'));
  }

  /** Resolves with the bound port (the real one when `port` is 0). */
  listen(host: string, port: number): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen({ host, port }, () => {
        this.server.off('error', reject);
        const address = this.server.address();
        resolve(typeof address === 'object' && address !== null ? address.port : port);
      });
    });
  }

  /** A worker became ready: connections waiting for one go out now. */
  flush(): void {
    while (this.waiting.length > 0) {
      const target = this.pickTarget();
      if (target === undefined) return;
      const { socket, timer } = this.waiting.shift()!;
      clearTimeout(timer);
      this.handOver(socket, target);
    }
  }

  /** Stops accepting; connections still waiting for a worker are closed. */
  close(): void {
    if (this.server.listening) this.server.close();
    for (const { socket, timer } of this.waiting.splice(0)) {
      clearTimeout(timer);
      socket.destroy();
    }
  }

  private dispatch(socket: Socket): void {
    socket.on('error', () => undefined); // a client that resets while waiting is not our error
    const target = this.pickTarget();
    if (target !== undefined) return this.handOver(socket, target);
    if (this.waiting.length >= MAX_WAITING_CONNECTIONS) return void socket.destroy();
    const timer = setTimeout(() => this.expire(socket), WAITING_CONNECTION_MS);
    this.waiting.push({ socket, timer });
  }

  private handOver(socket: Socket, target: ConnectionTarget): void {
    if (target.sendConnection(socket)) return;
    // That worker just went away: try the others, or wait with the rest.
    const other = this.pickTarget();
    if (other !== undefined && other.sendConnection(socket)) return;
    socket.destroy();
  }

  /** The next accepting worker after the last one used. */
  private pickTarget(): ConnectionTarget | undefined {
    const targets = this.targets();
    for (let i = 0; i < targets.length; i++) {
      const target = targets[(this.next + i) % targets.length];
      if (target?.acceptsConnections === true) {
        this.next = (this.next + i + 1) % targets.length;
        return target;
      }
    }
    return undefined;
  }

  private expire(socket: Socket): void {
    const at = this.waiting.findIndex((entry) => entry.socket === socket);
    if (at >= 0) this.waiting.splice(at, 1);
    this.log.warn({ waitedMs: WAITING_CONNECTION_MS }, 'no worker became ready for a waiting connection: closed');
    socket.destroy();
  }
}
