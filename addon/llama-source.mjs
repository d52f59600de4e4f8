#!/usr/bin/env node
// The llama.cpp source a clone builds against: the git bundle and release info inside the
// node-llama-cpp package, whose version is the library packages' (package.json optionalDependencies).
// node-llama-cpp is not a dependency of ours, because npm would then also install its own optional
// dependencies, the CUDA and Vulkan builds (hundreds of MB) included; so its tarball is fetched once
// with `npm pack`, checked against the integrity pinned here, and its llama/ folder kept in the user's
// cache. An installed semantic never gets here: its package ships the headers (extract-llama-source.mjs).
// Run directly, it prints the folder (bench/llama-server-build.ts builds llama-server from it).
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const SOURCE_PACKAGE = 'node-llama-cpp';

/** `npm view node-llama-cpp@<version> dist.integrity` of each version we build against. */
const integrities = {
  '3.21.1': 'sha512-E3N0Ev2Va0wzydvXYFwM9Hvyo07PoWjt8T/9GMc43Cvt8YkV/NU/tYUgEMC1grTPv2o9PRjQi0G3Wb5P/awiMg==',
};

/** The files of the package we need: the source bundle and the release it holds. */
const members = ['package/llama/gitRelease.bundle', 'package/llama/llama.cpp.info.json'];

/** node-llama-cpp's version: the one the library packages have, since headers and libraries must be the same release. */
export function sourceVersion() {
  const manifest = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
  const version = manifest.optionalDependencies?.['@node-llama-cpp/linux-x64'];
  if (typeof version !== 'string') throw new Error('package.json has no @node-llama-cpp/linux-x64 optional dependency to take the version from');
  return version;
}

/** Same place as shared/paths.ts's userCacheDir (this file runs before TypeScript is compiled). */
function userCacheDir() {
  const xdg = process.env.XDG_CACHE_HOME;
  return join(xdg !== undefined && xdg !== '' ? xdg : join(homedir(), '.cache'), 'semantic');
}

export function sourceDir(version = sourceVersion()) {
  return join(userCacheDir(), `${SOURCE_PACKAGE}-${version}`);
}

function integrityOf(file) {
  return `sha512-${createHash('sha512').update(readFileSync(file)).digest('base64')}`;
}

/** npm itself when a lifecycle script runs us (npm_execpath), else the one on the PATH. */
function npm(args, cwd) {
  const cli = process.env.npm_execpath;
  const [command, prefix] = cli !== undefined && cli.endsWith('.js') ? [process.execPath, [cli]] : ['npm', []];
  execFileSync(command, [...prefix, ...args], { cwd, stdio: ['ignore', 'ignore', 'inherit'] });
}

function fetchTarball(version, cache) {
  const expected = integrities[version];
  if (expected === undefined) {
    throw new Error(`no integrity is pinned for ${SOURCE_PACKAGE}@${version}: add \`npm view ${SOURCE_PACKAGE}@${version} dist.integrity\` to addon/llama-source.mjs`);
  }
  const tarball = join(cache, `${SOURCE_PACKAGE}-${version}.tgz`);
  if (!existsSync(tarball)) {
    console.error(`semantic: fetching ${SOURCE_PACKAGE}@${version} for the llama.cpp source (once; kept in ${cache})`);
    npm(['pack', `${SOURCE_PACKAGE}@${version}`, '--pack-destination', cache, '--silent'], cache);
  }
  const actual = integrityOf(tarball);
  if (actual !== expected) {
    rmSync(tarball, { force: true });
    throw new Error(`${SOURCE_PACKAGE}@${version}'s tarball has integrity ${actual}, not the pinned ${expected}; it was deleted`);
  }
  return tarball;
}

/**
 * The folder holding llama/gitRelease.bundle and llama/llama.cpp.info.json, fetched and unpacked
 * when the cache lacks it. The unpacking goes to a temporary folder renamed into place, so an
 * interrupted one is never taken for a complete one.
 */
export function ensureSource(version = sourceVersion()) {
  const dir = sourceDir(version);
  if (members.every((member) => existsSync(join(dir, member.replace(/^package\//, ''))))) return dir;
  const cache = dirname(dir);
  mkdirSync(cache, { recursive: true });
  const tarball = fetchTarball(version, cache);
  const unpacked = mkdtempSync(join(cache, `.${SOURCE_PACKAGE}-`));
  try {
    execFileSync('tar', ['-xzf', tarball, '-C', unpacked, ...members]);
    rmSync(dir, { recursive: true, force: true });
    renameSync(join(unpacked, 'package'), dir);
  } finally {
    rmSync(unpacked, { recursive: true, force: true });
  }
  rmSync(tarball, { force: true });
  return dir;
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  try {
    console.log(ensureSource());
  } catch (error) {
    console.error(`semantic: cannot get the llama.cpp source: ${error.message}`);
    process.exit(1);
  }
}
