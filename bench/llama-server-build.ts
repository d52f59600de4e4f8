/**
 * Finds the llama-server binary the side-by-side benchmark compares against: `$SEMANTIC_LLAMA_SERVER`
 * if set, else one built once from the llama.cpp source bundle node-llama-cpp ships (the same source
 * our addon's libraries come from), cached outside the repository in
 * `${XDG_CACHE_HOME:-~/.cache}/semantic/llama-server-<bundle commit, 12 chars>/build/bin/llama-server`.
 * The server lives under llama.cpp's tools/, so it needs LLAMA_BUILD_TOOLS as well as
 * LLAMA_BUILD_SERVER; the prebuilt web UI is off (it would be fetched at build time).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { projectRoot, userCacheDir } from '../shared/paths.js';

const bundle = (): string => join(projectRoot(), 'node_modules', 'node-llama-cpp', 'llama', 'gitRelease.bundle');

/** The llama.cpp release node-llama-cpp's bundle holds, and its HEAD commit. */
export function llamaCppSource(): { tag: string; commit: string } {
  const info = JSON.parse(readFileSync(join(projectRoot(), 'node_modules', 'node-llama-cpp', 'llama', 'llama.cpp.info.json'), 'utf8')) as { tag: string };
  const head = execFileSync('git', ['ls-remote', bundle(), 'HEAD'], { encoding: 'utf8' }).split(/\s/)[0] ?? '';
  return { tag: info.tag, commit: head };
}

export const cmakeFlags = [
  '-DLLAMA_BUILD_SERVER=ON', '-DLLAMA_BUILD_TOOLS=ON', '-DLLAMA_BUILD_TESTS=OFF', '-DLLAMA_BUILD_EXAMPLES=OFF',
  '-DLLAMA_CURL=OFF', '-DLLAMA_USE_PREBUILT_UI=OFF', '-DCMAKE_BUILD_TYPE=Release',
];

export function llamaServerDir(): string {
  return join(userCacheDir(), `llama-server-${llamaCppSource().commit.slice(0, 12)}`);
}

/** The binary's path, building it first (10–20 minutes on 2 cores) when it is not there yet. */
export function ensureLlamaServer(log: (line: string) => void = console.log): string {
  const override = process.env.SEMANTIC_LLAMA_SERVER;
  if (override !== undefined && override !== '') return override;
  const dir = llamaServerDir();
  const binary = join(dir, 'build', 'bin', 'llama-server');
  if (existsSync(binary)) return binary;
  mkdirSync(dir, { recursive: true });
  const run = (command: string, args: string[]): void => {
    log(`$ ${command} ${args.join(' ')}`);
    execFileSync(command, args, { stdio: 'inherit' });
  };
  if (!existsSync(join(dir, 'src'))) run('git', ['clone', '--quiet', bundle(), join(dir, 'src')]);
  run('cmake', ['-S', join(dir, 'src'), '-B', join(dir, 'build'), ...cmakeFlags]);
  run('cmake', ['--build', join(dir, 'build'), '-j', '2', '--target', 'llama-server']);
  return binary;
}
