/**
 * Finds the llama-server binary the side-by-side benchmark compares against: `$SEMANTIC_LLAMA_SERVER`
 * if set, else one built once from the llama.cpp source bundle the node-llama-cpp package carries (the
 * same source our addon's libraries come from; addon/llama-source.mjs fetches it into the user's
 * cache, as a clone's install step does), cached outside the repository in
 * `${XDG_CACHE_HOME:-~/.cache}/semantic/llama-server-<bundle commit, 12 chars>/build/bin/llama-server`.
 * The server lives under llama.cpp's tools/, so it needs LLAMA_BUILD_TOOLS as well as
 * LLAMA_BUILD_SERVER; the prebuilt web UI is off (it would be fetched at build time).
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, realpathSync, rmSync, symlinkSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { projectRoot, userCacheDir } from '../shared/paths.js';

let cachedSourceDir: string | undefined;

/** The folder holding node-llama-cpp's llama/ (the bundle and its release), fetched once if the cache lacks it. */
function sourceDir(): string {
  cachedSourceDir ??= execFileSync(process.execPath, [join(projectRoot(), 'addon', 'llama-source.mjs')], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  }).trim();
  return cachedSourceDir;
}

const bundle = (): string => join(sourceDir(), 'llama', 'gitRelease.bundle');

/** The llama.cpp release node-llama-cpp's bundle holds, and its HEAD commit. */
export function llamaCppSource(): { tag: string; commit: string } {
  const info = JSON.parse(readFileSync(join(sourceDir(), 'llama', 'llama.cpp.info.json'), 'utf8')) as { tag: string };
  const head = execFileSync('git', ['ls-remote', bundle(), 'HEAD'], { encoding: 'utf8' }).split(/\s/)[0] ?? '';
  return { tag: info.tag, commit: head };
}

export const cmakeFlags = [
  '-DLLAMA_BUILD_SERVER=ON',
  '-DLLAMA_BUILD_TOOLS=ON',
  '-DLLAMA_BUILD_TESTS=OFF',
  '-DLLAMA_BUILD_EXAMPLES=OFF',
  '-DLLAMA_CURL=OFF',
  '-DLLAMA_USE_PREBUILT_UI=OFF',
  '-DCMAKE_BUILD_TYPE=Release',
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

/** The folder of libllama/libggml the addon loads: `$SEMANTIC_LLAMA_LIB_DIR`, else what the install step linked. */
export function addonLibraryDir(): string {
  const override = process.env.SEMANTIC_LLAMA_LIB_DIR;
  if (override !== undefined && override !== '') return override;
  const gypi = JSON.parse(readFileSync(join(projectRoot(), 'deps', 'llama-libs.gypi'), 'utf8')) as { variables: { llama_lib_dir: string } };
  return gypi.variables.llama_lib_dir;
}

/**
 * llama-server's own build is native (`-march=native`, OpenMP) while the addon links
 * node-llama-cpp's portable prebuilt libraries, and on this machine that difference alone is worth
 * 10–30 % of prefill. To compare the servers and not the builds, this stages llama-server on the
 * addon's libraries: a copy of the binary and its server-only libraries (libllama-server-impl,
 * libllama-common, libmtmd: not part of the prebuilt set) beside links to every library of `libDir`,
 * with the sonames the binary asks for (libllama.so.0 → libllama.v0.5.0.so, …). ggml loads its CPU
 * variants from the executable's folder, so the prebuilt one chosen for this CPU is the one that runs.
 * Same source commit, so the same ABI. Spawn the result with LD_LIBRARY_PATH set to its folder: the
 * binary's RUNPATH names its build folder, and LD_LIBRARY_PATH is searched first.
 */
export function stageOnLibraries(binary: string, libDir: string): string {
  const from = dirname(binary);
  if (realpathSync(from) === realpathSync(libDir)) return binary;
  const dir = join(llamaServerDir(), `on-${createHash('sha256').update(realpathSync(libDir)).digest('hex').slice(0, 12)}`);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  for (const name of ['llama-server', 'libllama-server-impl.so', 'libllama-common.so.0', 'libmtmd.so.0']) {
    if (existsSync(join(from, name))) copyFileSync(realpathSync(join(from, name)), join(dir, name));
  }
  chmodSync(join(dir, 'llama-server'), 0o755);
  const libraries = readdirSync(libDir).filter((name) => /\.so(\.\d+)*$/.test(name));
  for (const name of libraries) if (!existsSync(join(dir, name))) symlinkSync(join(libDir, name), join(dir, name));
  const sonames: Record<string, RegExp> = {
    'libllama.so.0': /^libllama(\.v[\d.]+)?\.so$/,
    'libggml.so.0': /^libggml(\.v[\d.]+)?\.so$/,
    'libggml-base.so.0': /^libggml-base(\.v[\d.]+)?\.so$/,
  };
  for (const [soname, pattern] of Object.entries(sonames)) {
    const target = libraries.find((name) => pattern.test(name));
    if (target === undefined) throw new Error(`${libDir} has no library for ${soname}`);
    if (!existsSync(join(dir, soname))) symlinkSync(join(libDir, target), join(dir, soname));
  }
  return join(dir, 'llama-server');
}
