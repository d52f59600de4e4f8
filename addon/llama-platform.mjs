// Which prebuilt llama.cpp libraries the addon links: a pure function of the platform, the installed
// library packages and the environment, so the install step's choice is tested on any machine
// (test/unit/platform-choice.test.ts). Plain JavaScript because it runs at `npm install`, before
// TypeScript is compiled in a clone; llama-platform.d.mts types it for the tests.
import { join } from 'node:path';

/**
 * The library package each platform links by default: a CPU build, Metal on Apple Silicon. They are
 * our optional dependencies with the os/cpu/libc fields node-llama-cpp gives them, so npm installs
 * only those that match (on Linux x64 also linux-arm64, whose cpu field names x64 as well).
 */
export const defaultPackages = [
  { suffix: 'linux-x64', platform: 'linux', arch: 'x64', libc: 'glibc' },
  { suffix: 'linux-arm64', platform: 'linux', arch: 'arm64', libc: 'glibc' },
  { suffix: 'mac-arm64-metal', platform: 'darwin', arch: 'arm64' },
  { suffix: 'mac-x64', platform: 'darwin', arch: 'x64' },
  { suffix: 'win-x64', platform: 'win32', arch: 'x64' },
];

/** GPU builds: never installed by default (hundreds of MB, and a runtime the machine may lack), linked when SEMANTIC_LLAMA_GPU asks. */
export const gpuPackages = [
  { suffix: 'linux-x64-cuda', gpu: 'cuda', platform: 'linux', arch: 'x64', libc: 'glibc' },
  { suffix: 'linux-x64-vulkan', gpu: 'vulkan', platform: 'linux', arch: 'x64', libc: 'glibc' },
  { suffix: 'win-x64-cuda', gpu: 'cuda', platform: 'win32', arch: 'x64' },
  { suffix: 'win-x64-vulkan', gpu: 'vulkan', platform: 'win32', arch: 'x64' },
];

export const SCOPE = '@node-llama-cpp/';
const GPUS = ['cuda', 'vulkan'];
const HATCH = 'or set SEMANTIC_LLAMA_LIB_DIR to a folder of libllama/libggml libraries of the same llama.cpp release (README, "GPU libraries")';

function fits(entry, { platform, arch, libc }) {
  return entry.platform === platform && entry.arch === arch && (entry.libc === undefined || entry.libc === libc);
}

function chosen(suffix, installed, why) {
  const name = SCOPE + suffix;
  return { ok: true, packageName: name, libDir: join(installed[name], 'bins', suffix), why };
}

function notInstalled(suffix, version, why) {
  const name = `${SCOPE}${suffix}`;
  return {
    ok: false,
    message: `${why} needs ${name}, which is not installed: run \`npm install ${name}@${version}\` (npm skips an optional dependency under --omit=optional, or silently when that version is not published), ${HATCH}`,
  };
}

function chooseGpu(gpu, target, installed, version) {
  if (!GPUS.includes(gpu)) return { ok: false, message: `SEMANTIC_LLAMA_GPU must be one of ${GPUS.join(', ')}, not "${gpu}"` };
  const entry = gpuPackages.find((candidate) => candidate.gpu === gpu && fits(candidate, target));
  if (entry === undefined) {
    const where = gpuPackages.filter((candidate) => candidate.gpu === gpu).map((candidate) => candidate.suffix);
    return { ok: false, message: `no prebuilt ${gpu} build of llama.cpp exists for ${describe(target)} (there are ${where.join(', ')}): ${HATCH}` };
  }
  if (installed[SCOPE + entry.suffix] === undefined) return notInstalled(entry.suffix, version, `SEMANTIC_LLAMA_GPU=${gpu} on ${describe(target)}`);
  return chosen(entry.suffix, installed, `SEMANTIC_LLAMA_GPU=${gpu}`);
}

function describe({ platform, arch, libc }) {
  return platform === 'linux' ? `${platform}-${arch} (${libc ?? 'unknown C library'})` : `${platform}-${arch}`;
}

/**
 * @param target {platform, arch, libc}: libc is 'glibc' or 'musl' on Linux, undefined elsewhere.
 * @param installed package name → its folder, for the library packages that resolve.
 * @param env SEMANTIC_LLAMA_LIB_DIR (a folder that wins over everything) and SEMANTIC_LLAMA_GPU (cuda, vulkan).
 * @param version the library packages' version, which must be node-llama-cpp's (the headers' release).
 * @returns {ok: true, libDir, packageName (null for SEMANTIC_LLAMA_LIB_DIR), why} or {ok: false, message}.
 */
export function chooseLlamaLibraries({ target, installed, env, version }) {
  const override = env.SEMANTIC_LLAMA_LIB_DIR;
  if (override !== undefined && override !== '') return { ok: true, packageName: null, libDir: override, why: 'SEMANTIC_LLAMA_LIB_DIR' };
  const gpu = env.SEMANTIC_LLAMA_GPU;
  if (gpu !== undefined && gpu !== '') return chooseGpu(gpu, target, installed, version);
  const entry = defaultPackages.find((candidate) => fits(candidate, target));
  if (entry !== undefined) {
    if (installed[SCOPE + entry.suffix] === undefined) return notInstalled(entry.suffix, version, describe(target));
    return chosen(entry.suffix, installed, `the default for ${describe(target)}`);
  }
  if (target.platform === 'linux' && target.libc === 'musl' && defaultPackages.some((candidate) => fits(candidate, { ...target, libc: 'glibc' }))) {
    return { ok: false, message: `the prebuilt llama.cpp libraries for Linux need glibc, and this system's C library is musl (Alpine?): use a glibc system or image, ${HATCH}` };
  }
  const known = defaultPackages.map((candidate) => candidate.suffix).join(', ');
  return { ok: false, message: `no prebuilt llama.cpp libraries exist for ${describe(target)} (there are ${known}): build llama.cpp's libraries yourself, ${HATCH}` };
}
