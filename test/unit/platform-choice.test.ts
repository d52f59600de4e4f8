// The install step's choice of llama.cpp libraries (addon/llama-platform.mjs), with the platform,
// the installed packages and the environment stubbed: the package each platform links by default,
// the GPU builds only when asked, SEMANTIC_LLAMA_LIB_DIR over everything, and a message naming what
// to do where nothing fits.
import t from 'tap';
import { join } from 'node:path';
import { chooseLlamaLibraries, defaultPackages, gpuPackages, type Target } from '../../addon/llama-platform.mjs';
import { defaultGpuLayers } from '../../shared/config.js';

const VERSION = '3.21.1';
const modules = '/opt/semantic/node_modules';

/** Every library package npm could install, as if all of them were present (npm installs only those that fit). */
const everything = Object.fromEntries([...defaultPackages, ...gpuPackages].map(({ suffix }) => [`@node-llama-cpp/${suffix}`, join(modules, '@node-llama-cpp', suffix)]));

function choose(target: Target, installed: Record<string, string | undefined> = everything, env: Record<string, string> = {}) {
  return chooseLlamaLibraries({ target, installed, env, version: VERSION });
}

const libDirOf = (suffix: string) => join(modules, '@node-llama-cpp', suffix, 'bins', suffix);

t.test('each platform links its own CPU package by default, Apple Silicon the Metal one', async (t) => {
  const cases: [Target, string, string][] = [
    [{ platform: 'linux', arch: 'x64', libc: 'glibc' }, 'linux-x64', 'linux-x64 (glibc)'],
    [{ platform: 'linux', arch: 'arm64', libc: 'glibc' }, 'linux-arm64', 'linux-arm64 (glibc)'],
    [{ platform: 'darwin', arch: 'arm64', libc: undefined }, 'mac-arm64-metal', 'darwin-arm64'],
    [{ platform: 'darwin', arch: 'x64', libc: undefined }, 'mac-x64', 'darwin-x64'],
    [{ platform: 'win32', arch: 'x64', libc: undefined }, 'win-x64', 'win32-x64'],
  ];
  for (const [target, suffix, described] of cases) {
    t.same(
      choose(target),
      { ok: true, packageName: `@node-llama-cpp/${suffix}`, libDir: libDirOf(suffix), why: `the default for ${described}` },
      `${target.platform}-${target.arch}`,
    );
  }
});

t.test('installed CUDA or Vulkan packages are not linked unless SEMANTIC_LLAMA_GPU asks', async (t) => {
  const linux: Target = { platform: 'linux', arch: 'x64', libc: 'glibc' };
  t.match(choose(linux), { ok: true, packageName: '@node-llama-cpp/linux-x64' });
  t.same(choose(linux, everything, { SEMANTIC_LLAMA_GPU: 'cuda' }), {
    ok: true,
    packageName: '@node-llama-cpp/linux-x64-cuda',
    libDir: libDirOf('linux-x64-cuda'),
    why: 'SEMANTIC_LLAMA_GPU=cuda',
  });
  t.match(choose(linux, everything, { SEMANTIC_LLAMA_GPU: 'vulkan' }), { ok: true, packageName: '@node-llama-cpp/linux-x64-vulkan' });
  t.match(choose({ platform: 'win32', arch: 'x64', libc: undefined }, everything, { SEMANTIC_LLAMA_GPU: 'cuda' }), { ok: true, packageName: '@node-llama-cpp/win-x64-cuda' });
});

t.test('a GPU build asked for but not installed, not built for the platform, or unknown: a message saying what to do', async (t) => {
  const linux: Target = { platform: 'linux', arch: 'x64', libc: 'glibc' };
  const cpuOnly = { '@node-llama-cpp/linux-x64': join(modules, '@node-llama-cpp', 'linux-x64') };
  t.same(choose(linux, cpuOnly, { SEMANTIC_LLAMA_GPU: 'cuda' }), {
    ok: false,
    message:
      'SEMANTIC_LLAMA_GPU=cuda on linux-x64 (glibc) needs @node-llama-cpp/linux-x64-cuda, which is not installed: run `npm install @node-llama-cpp/linux-x64-cuda@3.21.1` ' +
      '(npm skips an optional dependency under --omit=optional, or silently when that version is not published), or set SEMANTIC_LLAMA_LIB_DIR to a folder of libllama/libggml libraries of the same llama.cpp release (README, "GPU libraries")',
  });
  t.match(choose({ platform: 'darwin', arch: 'arm64', libc: undefined }, everything, { SEMANTIC_LLAMA_GPU: 'cuda' }), {
    ok: false,
    message: /^no prebuilt cuda build of llama\.cpp exists for darwin-arm64 \(there are linux-x64-cuda, win-x64-cuda\): .*SEMANTIC_LLAMA_LIB_DIR/,
  });
  t.same(choose(linux, everything, { SEMANTIC_LLAMA_GPU: 'rocm' }), { ok: false, message: 'SEMANTIC_LLAMA_GPU must be one of cuda, vulkan, not "rocm"' });
});

t.test('the platform package missing (installed with --omit=optional): the install command to run', async (t) => {
  const choice = choose({ platform: 'darwin', arch: 'arm64', libc: undefined }, {});
  t.same(choice, {
    ok: false,
    message:
      'darwin-arm64 needs @node-llama-cpp/mac-arm64-metal, which is not installed: run `npm install @node-llama-cpp/mac-arm64-metal@3.21.1` (npm skips an optional dependency under --omit=optional, or silently when that version is not published), ' +
      'or set SEMANTIC_LLAMA_LIB_DIR to a folder of libllama/libggml libraries of the same llama.cpp release (README, "GPU libraries")',
  });
});

t.test('musl Linux has no prebuilt libraries: a message naming glibc and the escape hatch', async (t) => {
  for (const arch of ['x64', 'arm64']) {
    const choice = choose({ platform: 'linux', arch, libc: 'musl' });
    t.same(choice, {
      ok: false,
      message:
        "the prebuilt llama.cpp libraries for Linux need glibc, and this system's C library is musl (Alpine?): use a glibc system or image, " +
        'or set SEMANTIC_LLAMA_LIB_DIR to a folder of libllama/libggml libraries of the same llama.cpp release (README, "GPU libraries")',
    });
  }
});

t.test('an unsupported platform is named, with the platforms that have libraries', async (t) => {
  for (const target of [
    { platform: 'freebsd', arch: 'x64', libc: undefined },
    { platform: 'linux', arch: 'ppc64', libc: 'glibc' },
  ] as Target[]) {
    const choice = choose(target);
    t.equal(choice.ok, false);
    if (choice.ok) continue;
    t.match(
      choice.message,
      /^no prebuilt llama\.cpp libraries exist for (freebsd-x64|linux-ppc64 \(glibc\)) \(there are linux-x64, linux-arm64, mac-arm64-metal, mac-x64, win-x64\)/,
    );
    t.match(choice.message, /SEMANTIC_LLAMA_LIB_DIR/);
  }
});

t.test('SEMANTIC_LLAMA_LIB_DIR wins over every package, on any platform, even over a GPU request', async (t) => {
  const own = { SEMANTIC_LLAMA_LIB_DIR: '/srv/llama-build/bin' };
  const expected = { ok: true, packageName: null, libDir: '/srv/llama-build/bin', why: 'SEMANTIC_LLAMA_LIB_DIR' };
  t.same(choose({ platform: 'linux', arch: 'x64', libc: 'glibc' }, everything, own), expected);
  t.same(choose({ platform: 'linux', arch: 'x64', libc: 'musl' }, {}, own), expected);
  t.same(choose({ platform: 'freebsd', arch: 'x64', libc: undefined }, {}, { ...own, SEMANTIC_LLAMA_GPU: 'cuda' }), expected);
  t.match(choose({ platform: 'linux', arch: 'x64', libc: 'glibc' }, everything, { SEMANTIC_LLAMA_LIB_DIR: '' }), { packageName: '@node-llama-cpp/linux-x64' }, 'empty means unset');
});

t.test('the default --gpu-layers is -1 (all) on Apple Silicon, where Metal is linked, 0 elsewhere', async (t) => {
  t.equal(defaultGpuLayers('darwin', 'arm64'), -1);
  t.equal(defaultGpuLayers('darwin', 'x64'), 0);
  t.equal(defaultGpuLayers('linux', 'x64'), 0);
  t.equal(defaultGpuLayers('linux', 'arm64'), 0);
  t.equal(defaultGpuLayers('win32', 'x64'), 0);
});
