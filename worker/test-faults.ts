/**
 * Test-only fault switches, read once from the environment when a thread loads this module; the
 * process tests (test/process/disk-faults.test.ts, engine-faults.test.ts) set them to prove that a fault stays contained where
 * a real one cannot be caused on demand (ops-grafana.test.ts, to make the write-failure counter appear in a
 * scrape). Unset (production), each is one comparison with undefined.
 * docs/reliability.md lists them. They are not options: `semantic config` and --help never show them.
 */
import type { Context } from './engine/addon.js';

function tokenId(value: string | undefined): number | undefined {
  return value !== undefined && /^[0-9]{1,7}$/.test(value) ? Number(value) : undefined;
}

export const testFaults = {
  /** SEMANTIC_FAULT_DECODE_TOKEN: a decode call whose batch carries this token id fails, as a llama_decode error would. */
  decodeToken: tokenId(process.env.SEMANTIC_FAULT_DECODE_TOKEN),
  /** SEMANTIC_FAULT_WRITER_EXIT_AGENT: the cache file thread exits (as if it crashed) when asked to write this agent's file. */
  writerExitAgent: process.env.SEMANTIC_FAULT_WRITER_EXIT_AGENT,
  /**
   * SEMANTIC_FAULT_DISK_WRITE: every cache file write fails with this errno code (ENOSPC, EROFS):
   * a full or read-only cache dir where the test cannot mount a small file system.
   */
  diskWriteError: process.env.SEMANTIC_FAULT_DISK_WRITE,
};

/** The context, or (SEMANTIC_FAULT_DECODE_TOKEN set) one whose decode fails for a batch holding that token. */
export function withDecodeFault(context: Context): Context {
  const token = testFaults.decodeToken;
  if (token === undefined) return context;
  const failing = (): Promise<Int32Array> =>
    Promise.reject(Object.assign(new Error(`llama_decode: returned -3 (SEMANTIC_FAULT_DECODE_TOKEN ${token})`), { code: 'ERR_DECODE_FATAL' }));
  return new Proxy(context, {
    get(target, key) {
      if (key === 'decode')
        return (batch: Parameters<Context['decode']>[0], samples?: Parameters<Context['decode']>[1]) => (batch.tokens.includes(token) ? failing() : target.decode(batch, samples));
      const value: unknown = Reflect.get(target, key);
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
}

/** Throws as a full or read-only disk would, when SEMANTIC_FAULT_DISK_WRITE is set. */
export function checkDiskWriteFault(path: string): void {
  const code = testFaults.diskWriteError;
  if (code !== undefined) throw Object.assign(new Error(`${code}: cannot write ${path} (SEMANTIC_FAULT_DISK_WRITE)`), { code });
}
