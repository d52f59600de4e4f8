/**
 * The native code the addon links, which npm's tree does not show: llama.cpp and its ggml, at the
 * release node-llama-cpp's source bundle carries. The facts come from the same files the install
 * step (addon/extract-llama-source.mjs) reads, kept in the user's cache by addon/llama-source.mjs
 * (which fetches node-llama-cpp's tarball once if they are not there), so the SBOM and NOTICE name
 * what was built against.
 * Since issue 13 the HTTP front is node:http, so uWebSockets is no longer a component.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export interface LlamaCppFacts {
  /** The release tag, e.g. `v0.5.0` (node-llama-cpp's llama/llama.cpp.info.json). */
  tag: string;
  /** `owner/name` on GitHub, e.g. `ggml-org/llama.cpp`. */
  repo: string;
  /** The bundled tree's commit: node-llama-cpp's copy carries changes upstream lacks, so the tag alone is not enough. */
  commit: string;
  nodeLlamaCppVersion: string;
  /** llama.cpp's LICENSE text, as the install step extracted it to deps/llama.cpp/LICENSE. */
  licenseText: string;
}

export function llamaCppFacts(root: string): LlamaCppFacts {
  const nlcDir = execFileSync(process.execPath, [join(root, 'addon', 'llama-source.mjs')], { encoding: 'utf8' }).trim();
  const info = JSON.parse(readFileSync(join(nlcDir, 'llama', 'llama.cpp.info.json'), 'utf8')) as { tag: string; llamaCppGithubRepo: string };
  const heads = execFileSync('git', ['bundle', 'list-heads', join(nlcDir, 'llama', 'gitRelease.bundle')], { encoding: 'utf8' });
  const commit = /^([0-9a-f]{40}) HEAD$/m.exec(heads)?.[1];
  if (commit === undefined) throw new Error(`no HEAD in node-llama-cpp's llama.cpp bundle (git bundle list-heads said: ${heads.trim()})`);
  const licenseFile = join(root, 'deps', 'llama.cpp', 'LICENSE');
  if (!existsSync(licenseFile)) throw new Error(`${licenseFile} is missing: npm install extracts it (addon/extract-llama-source.mjs)`);
  const manifest = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { optionalDependencies: Record<string, string> };
  const version = manifest.optionalDependencies['@node-llama-cpp/linux-x64'] ?? 'unknown';
  return { tag: info.tag, repo: info.llamaCppGithubRepo, commit, nodeLlamaCppVersion: version, licenseText: readFileSync(licenseFile, 'utf8') };
}
