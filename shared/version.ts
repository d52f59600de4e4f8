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
  /** The @node-llama-cpp/<platform> package the addon links; null when SEMANTIC_LLAMA_LIB_DIR chose the folder at install. */
  llamaPackage: string | null | undefined;
}

function readJson(path: string): unknown {
  return JSON.parse(readFileSync(path, 'utf8'));
}

interface LibraryVariables {
  llama_release?: unknown;
  llama_package?: unknown;
}

/** What the install step recorded (addon/extract-llama-source.mjs); undefined before it ran. */
function libraryVariables(root: string): LibraryVariables | undefined {
  try {
    return (readJson(join(root, 'deps', 'llama-libs.gypi')) as { variables?: LibraryVariables }).variables;
  } catch {
    return undefined;
  }
}

export function versionInfo(): VersionInfo {
  const root = projectRoot();
  const manifest = readJson(join(root, 'package.json')) as { version: string };
  const variables = libraryVariables(root);
  const release = variables?.llama_release;
  const linked = variables?.llama_package;
  return {
    semantic: manifest.version,
    llamaCpp: typeof release === 'string' ? release : undefined,
    llamaPackage: typeof linked === 'string' ? (linked === '' ? null : linked) : undefined,
  };
}
