/**
 * With SO_REUSEPORT each worker has its own listen socket and its own accept queue. When a draining
 * worker closes its socket, the connections the kernel had already queued on it are reset, unless
 * `net.ipv4.tcp_migrate_req` (Linux ≥ 5.14) lets the kernel move them to another worker's socket. A
 * rolling restart or a worker's drain then loses no connection; the supervisor says so at startup.
 */
import { readFile } from 'node:fs/promises';
import type { Logger } from 'pino';

export const tcpMigrateReqPath = '/proc/sys/net/ipv4/tcp_migrate_req';

/** The value of the sysctl, or undefined when it cannot be read (older kernel, no /proc). */
export async function readTcpMigrateReq(path = tcpMigrateReqPath): Promise<string | undefined> {
  try {
    return (await readFile(path, 'utf8')).trim();
  } catch {
    return undefined;
  }
}

/** One warn line unless the kernel migrates queued connections (`1`). Linux only: elsewhere uWS shares no port. */
export async function warnIfQueuedConnectionsMayReset(logger: Logger, path = tcpMigrateReqPath): Promise<void> {
  if (process.platform !== 'linux') return;
  const value = await readTcpMigrateReq(path);
  if (value === '1') return;
  logger.warn(
    { tcpMigrateReq: value ?? 'unreadable', path },
    'net.ipv4.tcp_migrate_req is not 1: with SO_REUSEPORT, connections still queued on a draining worker\'s listen socket can be reset when it closes; run `sysctl -w net.ipv4.tcp_migrate_req=1` (Linux kernel ≥ 5.14)',
  );
}
