#!/usr/bin/env node
// Runs at `npm install` (addon/install.mjs), before node-gyp. It prepares what binding.gyp needs:
//   deps/llama.cpp/         llama.h, ggml headers and the demo model's vocabulary GGUF: in an
//                           installed package, shipped in it; in a clone, extracted once from the
//                           exact llama.cpp source that the node-llama-cpp package carries as a git
//                           bundle (llama-source.mjs fetches it into the user's cache: the only download);
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
import { ensureSource, SOURCE_PACKAGE, sourceVersion } from './llama-source.mjs';

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

const stampFile = join(outDir, '.release');

/** The stamp's second line: the source package the headers came from, the version package.json pins now. */
const sourceLine = () => `${SOURCE_PACKAGE}@${sourceVersion()}`;

/**
 * The release of the headers already in deps/llama.cpp, or null when they must be extracted. The
 * stamp names the release, the source package and version, then the files, so a checkout whose pin
 * moved or that wants more files extracts again. An installed package's are shipped with the stamp
 * the packing clone wrote.
 */
function extractedRelease() {
  if (!existsSync(stampFile) || !existsSync(join(outDir, 'include', 'llama.h'))) return null;
  const [release, source, ...files] = readFileSync(stampFile, 'utf8').split('\n');
  return source === sourceLine() && files.join('\n') === wanted.join('\n') ? release : null;
}

function extractSource(sourceDir) {
  const info = readJson(join(sourceDir, 'llama', 'llama.cpp.info.json'));
  console.log(`semantic: extracting the llama.cpp headers from ${join(sourceDir, 'llama', 'gitRelease.bundle')}`);
  rmSync(outDir, { recursive: true, force: true });
  mkdirSync(outDir, { recursive: true });
  const bare = mkdtempSync(join(tmpdir(), 'semantic-llama-'));
  try {
    execFileSync('git', ['clone', '--quiet', '--bare', join(sourceDir, 'llama', 'gitRelease.bundle'), bare]);
    const archive = execFileSync('git', ['--git-dir', bare, 'archive', 'HEAD', ...wanted], { maxBuffer: 1 << 30 });
    execFileSync('tar', ['-x', '-C', outDir], { input: archive });
  } finally {
    rmSync(bare, { recursive: true, force: true });
  }
  writeFileSync(stampFile, [info.tag, sourceLine(), ...wanted].join('\n'));
  return info.tag;
}

/** Linux's C library, as npm itself tells glibc from musl: the process report names glibc's version. */
function detectLibc() {
  if (process.platform !== 'linux') return undefined;
  return process.report.getReport().header.glibcVersionRuntime ? 'glibc' : 'musl';
}

function chooseLibraries(release) {
  const version = sourceVersion();
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
      throw new Error(
        `libraries in ${choice.libDir} are llama.cpp ${built} but the headers in ${outDir} are ${release}: install matching versions (in a clone, delete ${outDir} to extract the headers of node-llama-cpp@${version} again)`,
      );
    }
  }
  return choice;
}

/** The libraries the addon links directly; ggml's CPU/GPU backends are loaded at run time. */
function linkedLibraries(libDir) {
  if (process.platform === 'win32') {
    throw new Error(`the addon's build (binding.gyp) links with GCC/Clang flags and does not support Windows yet; the libraries are in ${libDir}`);
  }
  const linked = /^lib(llama|ggml|ggml-base)(\.[a-z]+)?(\.v[0-9.]+)?\.(so|dylib)$/; // libllama.v0.4.0.so, libllama.cuda.v0.4.0.so, libllama.metal.v0.4.0.dylib
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

try {
  const release = extractedRelease() ?? extractSource(ensureSource());
  const choice = chooseLibraries(release);
  writeGypi(choice, release);
  console.log(`semantic: llama.cpp ${release} headers in ${outDir}; linking ${choice.libDir} (${choice.why})`);
} catch (error) {
  // The message says what to do; a stack trace would bury it in npm's output.
  console.error(`semantic: cannot prepare the addon's build: ${error.message}`);
  process.exit(1);
}
