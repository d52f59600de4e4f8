#!/usr/bin/env node
// Runs at `npm install`, before node-gyp. It prepares what binding.gyp needs, offline:
//   deps/llama.cpp/         llama.h, ggml headers and the vocabulary GGUFs, taken from the exact
//                           llama.cpp source that node-llama-cpp ships as a git bundle;
//   deps/llama-libs.gypi    the folder of prebuilt libllama/libggml libraries to link against,
//                           chosen from the installed @node-llama-cpp/<platform> packages.
// Headers and libraries must come from the same llama.cpp release, so the release recorded in the
// libraries' build metadata is checked against the one of the source bundle.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync, mkdtempSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

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

/** Preference order: an explicit override, then GPU packages a user chose to install, then CPU. */
const libraryPackages = ['linux-x64-cuda', 'linux-x64-vulkan', 'mac-arm64-metal', 'linux-arm64', 'mac-x64', 'linux-x64'];

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

function chooseLibraries(release) {
  const override = process.env.SEMANTIC_LLAMA_LIB_DIR;
  const candidates = override
    ? [override]
    : libraryPackages
        .filter((suffix) => suffix.split('-')[0] === (process.platform === 'darwin' ? 'mac' : process.platform))
        .map((suffix) => {
          const dir = packageDir(`@node-llama-cpp/${suffix}`);
          return dir ? join(dir, 'bins', suffix) : null;
        })
        .filter((dir) => dir !== null && existsSync(dir));
  const libDir = candidates[0];
  if (!libDir) {
    throw new Error('no @node-llama-cpp/<platform> library package is installed: run `npm install`, or set SEMANTIC_LLAMA_LIB_DIR to a folder of libllama/libggml libraries');
  }
  const metaFile = join(libDir, '_nlcBuildMetadata.json');
  if (existsSync(metaFile)) {
    const built = readJson(metaFile).buildOptions?.llamaCpp?.release;
    if (built && built !== release) {
      throw new Error(`libraries in ${libDir} are llama.cpp ${built} but the headers are ${release}: install matching versions`);
    }
  }
  return libDir;
}

/** The libraries the addon links directly; ggml's CPU/GPU backends are loaded at run time. */
function linkedLibraries(libDir) {
  const linked = /^lib(llama|ggml|ggml-base)(\.[a-z]+)?(\.v[0-9.]+)?\.(so|dylib)$/; // libllama.v0.5.0.so, libllama.cuda.v0.5.0.so
  const names = readdirSync(libDir).filter((name) => linked.test(name));
  if (!names.some((name) => name.startsWith('libllama'))) throw new Error(`no libllama in ${libDir}`);
  return names.map((name) => join(libDir, name));
}

function writeGypi(libDir, release) {
  const gypi = {
    variables: {
      llama_include_dirs: [join(outDir, 'include'), join(outDir, 'ggml', 'include')],
      llama_lib_dir: libDir,
      llama_libraries: linkedLibraries(libDir),
      llama_release: release,
    },
  };
  writeFileSync(join(root, 'deps', 'llama-libs.gypi'), JSON.stringify(gypi, null, 2) + '\n');
}

const nlcDir = packageDir('node-llama-cpp');
if (!nlcDir) throw new Error('node-llama-cpp is not installed: its llama.cpp source bundle provides the headers');
const release = extractSource(nlcDir);
const libDir = chooseLibraries(release);
writeGypi(libDir, release);
console.log(`semantic: llama.cpp ${release} headers in ${outDir}; linking ${libDir}`);
