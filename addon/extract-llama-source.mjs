#!/usr/bin/env node
// Runs at `npm install` (addon/install.mjs), before node-gyp. It prepares what binding.gyp needs, offline:
//   deps/llama.cpp/         llama.h, ggml headers and the demo model's vocabulary GGUF: in a clone,
//                           taken from the exact llama.cpp source that node-llama-cpp (a dev
//                           dependency) ships as a git bundle; in an installed package, shipped in it;
//   deps/llama-libs.gypi    the folder of prebuilt libllama/libggml libraries to link against, from
//                           the @node-llama-cpp/<platform> package llama-platform.mjs chooses.
// Headers and libraries must come from the same llama.cpp release, so the release recorded in the
// libraries' build metadata is checked against the one of the headers.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync, mkdtempSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chooseLlamaLibraries, defaultPackages, gpuPackages, SCOPE } from './llama-platform.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(join(root, 'package.json'));
const outDir = join(root, 'deps', 'llama.cpp');
const wanted = [
  'include',
  'ggml/include',
  'models/ggml-vocab-qwen2.gguf',
  'models/ggml-vocab-llama-bpe.gguf',
  'models/ggml-vocab-llama-spm.gguf',
  'models/ggml-vocab-phi-3.gguf',
  'LICENSE',
];

function packageDir(name) {
  try {
    return dirname(require.resolve(`${name}/package.json`));
  } catch {
    const guess = join(root, 'node_modules', name);
    return existsSync(join(guess, 'package.json')) ? guess : null;
  }
}

function readJson(file) {
  return JSON.parse(readFileSync(file, 'utf8'));
}

/** An installed package has no node-llama-cpp: its headers were shipped in deps/llama.cpp by `npm pack`. */
function shippedSource() {
  const stamp = join(outDir, '.release');
  if (!existsSync(stamp) || !existsSync(join(outDir, 'include', 'llama.h'))) {
    throw new Error('the llama.cpp headers are missing: in a clone, install the dev dependencies (node-llama-cpp ships them); a packed semantic carries them in deps/llama.cpp');
  }
  return readFileSync(stamp, 'utf8').split('\n')[0];
}

function extractSource(nlcDir) {
  const info = readJson(join(nlcDir, 'llama', 'llama.cpp.info.json'));
  const stamp = join(outDir, '.release');
  // The stamp names the files too, so a checkout that wants more files extracts again.
  const stampText = [info.tag, ...wanted].join('\n');
  if (existsSync(stamp) && readFileSync(stamp, 'utf8') === stampText) return info.tag;
  rmSync(outDir, { recursive: true, force: true });
  mkdirSync(outDir, { recursive: true });
  const bare = mkdtempSync(join(tmpdir(), 'semantic-llama-'));
  try {
    execFileSync('git', ['clone', '--quiet', '--bare', join(nlcDir, 'llama', 'gitRelease.bundle'), bare]);
    const archive = execFileSync('git', ['--git-dir', bare, 'archive', 'HEAD', ...wanted], { maxBuffer: 1 << 30 });
    execFileSync('tar', ['-x', '-C', outDir], { input: archive });
  } finally {
    rmSync(bare, { recursive: true, force: true });
  }
  writeFileSync(stamp, stampText);
  return info.tag;
}

/** Linux's C library, as npm itself tells glibc from musl: the process report names glibc's version. */
function detectLibc() {
  if (process.platform !== 'linux') return undefined;
  return process.report.getReport().header.glibcVersionRuntime ? 'glibc' : 'musl';
}

function chooseLibraries(release) {
  const manifest = readJson(join(root, 'package.json'));
  const version = manifest.optionalDependencies?.[`${SCOPE}linux-x64`] ?? manifest.devDependencies?.['node-llama-cpp'];
  const installed = {};
  for (const { suffix } of [...defaultPackages, ...gpuPackages]) {
    const dir = packageDir(SCOPE + suffix);
    if (dir !== null) installed[SCOPE + suffix] = dir;
  }
  const target = { platform: process.platform, arch: process.arch, libc: detectLibc() };
  const choice = chooseLlamaLibraries({ target, installed, env: process.env, version });
  if (!choice.ok) throw new Error(choice.message);
  if (!existsSync(choice.libDir)) throw new Error(`${choice.libDir} (${choice.why}) does not exist`);
  const metaFile = join(choice.libDir, '_nlcBuildMetadata.json');
  if (existsSync(metaFile)) {
    const built = readJson(metaFile).buildOptions?.llamaCpp?.release;
    if (built && built !== release) {
      throw new Error(`libraries in ${choice.libDir} are llama.cpp ${built} but the headers are ${release}: install matching versions`);
    }
  }
  return choice;
}

/** The libraries the addon links directly; ggml's CPU/GPU backends are loaded at run time. */
function linkedLibraries(libDir) {
  if (process.platform === 'win32') {
    throw new Error(`the addon's build (binding.gyp) links with GCC/Clang flags and does not support Windows yet; the libraries are in ${libDir}`);
  }
  const linked = /^lib(llama|ggml|ggml-base)(\.[a-z]+)?(\.v[0-9.]+)?\.(so|dylib)$/; // libllama.v0.5.0.so, libllama.cuda.v0.5.0.so
  const names = readdirSync(libDir).filter((name) => linked.test(name));
  if (!names.some((name) => name.startsWith('libllama'))) throw new Error(`no libllama in ${libDir}`);
  return names.map((name) => join(libDir, name));
}

function writeGypi({ libDir, packageName }, release) {
  const gypi = {
    variables: {
      // The package the libraries come from, or "" for SEMANTIC_LLAMA_LIB_DIR (`semantic version --json` reports it).
      llama_package: packageName ?? '',
      llama_include_dirs: [join(outDir, 'include'), join(outDir, 'ggml', 'include')],
      llama_lib_dir: libDir,
      llama_libraries: linkedLibraries(libDir),
      llama_release: release,
    },
  };
  writeFileSync(join(root, 'deps', 'llama-libs.gypi'), JSON.stringify(gypi, null, 2) + '\n');
}

// Only a clone has node-llama-cpp in its own node_modules; one found further up belongs to someone else.
const nlcDir = existsSync(join(root, 'node_modules', 'node-llama-cpp', 'package.json')) ? join(root, 'node_modules', 'node-llama-cpp') : null;
try {
  const release = nlcDir === null ? shippedSource() : extractSource(nlcDir);
  const choice = chooseLibraries(release);
  writeGypi(choice, release);
  console.log(`semantic: llama.cpp ${release} headers in ${outDir}; linking ${choice.libDir} (${choice.why})`);
} catch (error) {
  // The message says what to do; a stack trace would bury it in npm's output.
  console.error(`semantic: cannot prepare the addon's build: ${error.message}`);
  process.exit(1);
}
