/**
 * How the disk tier names things on disk, on the ground floor because the supervisor (the model's
 * fingerprint for the shared cache dir) and the budgets (counting a dir's cache files) need it too:
 * one agent's file name, and the model identity its header carries.
 */
import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';

/**
 * A file name that cannot leave the cache dir: agent ids are already limited to A-Z a-z 0-9 . _ : -
 * (not starting with '.'); ':' is escaped as well since some file systems refuse it.
 */
export function cacheFileName(agentId: string): string {
  return agentId.replace(/[^A-Za-z0-9._-]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')) + '.safetensors';
}

export function agentIdOfFileName(name: string): string | undefined {
  if (!name.endsWith('.safetensors') || name.startsWith('.')) return undefined;
  try {
    return decodeURIComponent(name.slice(0, -'.safetensors'.length));
  } catch {
    return undefined;
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
