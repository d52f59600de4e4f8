/**
 * The disk tier: one safetensors file per agent in the cache dir, written behind each completed turn
 * by a piscina thread and read back when the agent returns, across restarts. At startup the dir is
 * indexed by file name only; files are verified when read.
 */
import { createHash } from 'node:crypto';
import { mkdir, open, readdir } from 'node:fs/promises';
import { resolve, sep } from 'node:path';
import { Piscina } from 'piscina';
import { agentIdOfFileName, cacheFileName, type CacheMetadata } from './cache-file.js';
import type { ReadResult, ReadTask, WriteTask } from './cache-task.js';

export class DiskTier {
  private readonly known = new Set<string>();
  private readonly pool = new Piscina({ filename: new URL('./cache-task.js', import.meta.url).href, maxThreads: 1, idleTimeout: 60_000 });

  constructor(
    private readonly dir: string,
    private readonly model: string,
    private readonly kvType: string,
  ) {}

  /** Creates the dir and learns which agents have a file (cheap: names only). */
  async index(): Promise<number> {
    await mkdir(this.dir, { recursive: true });
    for (const name of await readdir(this.dir)) {
      const agentId = agentIdOfFileName(name);
      if (agentId !== undefined) this.known.add(agentId);
    }
    return this.known.size;
  }

  has(agentId: string): boolean {
    return this.known.has(agentId);
  }

  /** Write-behind: the state's buffer is transferred to the writer thread, not copied. */
  persist(agentId: string, tokens: Int32Array, state: Uint8Array): Promise<number> {
    this.known.add(agentId);
    const task: WriteTask = { op: 'write', path: this.pathOf(agentId), ...this.metadata(agentId), tokens, state };
    return this.pool.run(task, { transferList: [state.buffer as ArrayBuffer] }) as Promise<number>;
  }

  /** The agent's tokens and state, or null (no file, or a bad one, now quarantined). */
  async load(agentId: string): Promise<{ tokens: Int32Array; state: Uint8Array } | null> {
    const task: ReadTask = { op: 'read', path: this.pathOf(agentId), ...this.metadata(agentId) };
    const result = (await this.pool.run(task)) as ReadResult;
    if ('tokens' in result) return result;
    this.known.delete(agentId);
    return null;
  }

  async close(): Promise<void> {
    await this.pool.close();
  }

  private metadata(agentId: string): CacheMetadata {
    return { agentId, model: this.model, kvType: this.kvType };
  }

  private pathOf(agentId: string): string {
    const path = resolve(this.dir, cacheFileName(agentId));
    if (!path.startsWith(resolve(this.dir) + sep)) throw new Error(`agent id ${agentId} would leave the cache dir`);
    return path;
  }
}

/** The model's identity for cache files: its size and a hash of its first and last 4 MiB. */
export async function modelFingerprint(path: string): Promise<string> {
  const file = await open(path, 'r');
  try {
    const { size } = await file.stat();
    const chunk = Math.min(4 << 20, size);
    const head = Buffer.alloc(chunk);
    const tail = Buffer.alloc(chunk);
    await file.read(head, 0, chunk, 0);
    await file.read(tail, 0, chunk, size - chunk);
    return createHash('sha256').update(String(size)).update(head).update(tail).digest('hex').slice(0, 32);
  } finally {
    await file.close();
  }
}
