/**
 * Where a model's agents' cache files live. The model a process started with keeps the top of the
 * cache dir, as it always had (a restart with the same --model finds them); a model swapped in by the
 * admin API keeps its files in `models/<fingerprint>/`, so two models never share a file name: a swap
 * and a swap back neither overwrite nor quarantine the other model's files, and one model's KV never
 * reaches the other. Used by the inference thread (a swap in `semantic serve`) and by the supervisor
 * (a swap in `semantic supervise` starts workers on the new model with its folder as their cache dir).
 */
import { join } from 'node:path';

export function cacheDirOf(cacheDir: string, fingerprint: string, homeFingerprint: string): string {
  return fingerprint === homeFingerprint ? cacheDir : join(cacheDir, 'models', fingerprint);
}
