/**
 * Our version and the llama.cpp release the addon was built against (`semantic version`, the
 * `semantic_build_info` metric). The release is read from what the install step wrote
 * (deps/llama-libs.gypi), because that, not node-llama-cpp's package version, is what the linked
 * libraries are.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { projectRoot } from './paths.js';

export interface VersionInfo {
  semantic: string;
  /** Undefined when the install step has not run (no deps/llama-libs.gypi). */
  llamaCpp: string | undefined;
}

function readJson(path: string): unknown {
  return JSON.parse(readFileSync(path, 'utf8'));
}

function llamaRelease(root: string): string | undefined {
  try {
    const gypi = readJson(join(root, 'deps', 'llama-libs.gypi')) as { variables?: { llama_release?: unknown } };
    const release = gypi.variables?.llama_release;
    return typeof release === 'string' ? release : undefined;
  } catch {
    return undefined;
  }
}

export function versionInfo(): VersionInfo {
  const root = projectRoot();
  const manifest = readJson(join(root, 'package.json')) as { version: string };
  return { semantic: manifest.version, llamaCpp: llamaRelease(root) };
}
