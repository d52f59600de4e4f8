/**
 * Default byte budgets of the agents' cache tiers, sized from the machine the server runs on. The
 * config says `-1` ("auto") rather than a number because a number fixed at build time is wrong
 * both on a laptop and on a large server, and because a config file or `semantic config` output
 * moved to another machine should be sized again there. Each server process resolves "auto" once,
 * at startup, so the synchronous file system calls here cost nothing that matters.
 */
import { existsSync, readdirSync, statSync, statfsSync } from 'node:fs';
import { totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { agentIdOfFileName } from './cache-files.js';

/** The config value that means "size it from the machine". */
export const AUTO = -1;

const GiB = 1024 * 1024 * 1024;
export const ramAutoCapBytes = 8 * GiB;
export const diskAutoCapBytes = 64 * GiB;

/**
 * A quarter of memory leaves the rest to the model weights, the context's KV cache and the page cache
 * that disk-tier reads are served from; the cap keeps a large machine's supervised workers, each with
 * its own RAM tier, from claiming most of it for idle agents.
 */
export function autoRamBytes(memoryBytes: number): number {
  return Math.min(Math.floor(memoryBytes / 4), ramAutoCapBytes);
}

/**
 * A quarter of the space the cache could use: what is free plus what the cache dir already holds,
 * so that a restart with a full cache does not shrink its own budget. The cap bounds the startup
 * index and keeps a shared disk mostly free for everything else.
 */
export function autoDiskBytes(freeBytes: number, heldBytes: number): number {
  return Math.min(Math.floor((freeBytes + heldBytes) / 4), diskAutoCapBytes);
}

/** The machine's memory, or the cgroup limit where lower: in a container, totalmem() is the host's. */
export function usableMemoryBytes(): number {
  const limit = process.constrainedMemory();
  return limit > 0 ? Math.min(totalmem(), limit) : totalmem();
}

/** Free bytes (for this user) of the file system the dir is, or will be created, on. */
export function freeDiskBytes(dir: string): number {
  let existing = dir;
  while (!existsSync(existing) && dirname(existing) !== existing) existing = dirname(existing);
  const stats = statfsSync(existing);
  return stats.bavail * stats.bsize;
}

/** Bytes of the agents' cache files in the dir (0 when it does not exist yet). */
export function cacheFileBytes(dir: string): number {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return 0;
  }
  let total = 0;
  for (const name of names) {
    if (agentIdOfFileName(name) === undefined) continue;
    try {
      total += statSync(join(dir, name)).size;
    } catch {
      // deleted since readdir: holds nothing
    }
  }
  return total;
}

export function ramBudgetBytes(configured: number): number {
  return configured === AUTO ? autoRamBytes(usableMemoryBytes()) : configured;
}

export function diskBudgetBytes(configured: number, cacheDir: string): number {
  return configured === AUTO ? autoDiskBytes(freeDiskBytes(cacheDir), cacheFileBytes(cacheDir)) : configured;
}

/** The share of a tier's budget that stored responses (the Responses API) may hold: 1/8. */
const responsesShare = 8;

/**
 * One budget, two kinds of bytes: the agents' caches and the Responses API's stored responses live in
 * the same tier (files under the cache dir, or memory without a disk tier), and together they must
 * stay within the figure the operator gave. A record is a conversation's text, a cache file its KV
 * state (hundreds of times larger per token), so the records get a fixed eighth and the agents the rest.
 */
export function splitTierBudget(bytes: number): { agentBytes: number; responseBytes: number } {
  const responseBytes = Math.floor(bytes / responsesShare);
  return { agentBytes: bytes - responseBytes, responseBytes };
}

/** What the KV cache's size per token depends on (ModelInfo from the addon). */
export interface KvShape {
  layerCount: number;
  headCount: number;
  headCountKv: number;
  embeddingLength: number;
}

/** Bytes per element of each KV type: ggml's q8_0 and q4_0 store 32 values in 34 and 18 bytes. */
const kvTypeBytes = { f16: 2, q8_0: 34 / 32, q4_0: 18 / 32 } as const;

/** Bytes one token's K and V take across all layers. */
export function kvBytesPerToken(model: KvShape, kvType: keyof typeof kvTypeBytes): number {
  const headDim = model.embeddingLength / model.headCount;
  return model.layerCount * 2 * model.headCountKv * headDim * kvTypeBytes[kvType];
}

/**
 * The context's cells when none is configured: the model's training context, so that one agent can
 * use all of it (the sequences share the cells), unless that KV cache would take more than an eighth
 * of memory — the RAM tier may take a quarter, and the weights and the page cache need the rest.
 * Whole multiples of 256, as llama.cpp pads the context; at least 256.
 */
export function autoContextSize(trainingContext: number, bytesPerToken: number, memoryBytes: number): number {
  const fits = Math.floor(memoryBytes / 8 / Math.max(1, bytesPerToken));
  return Math.max(256, Math.floor(Math.min(trainingContext > 0 ? trainingContext : 4096, fits) / 256) * 256);
}
