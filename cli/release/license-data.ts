/**
 * The production dependency tree's licenses, as license-checker-rseidelsohn (a maintained checker)
 * reads them from the installed packages: one read feeds both the policy check and NOTICE.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { init, type ModuleInfos } from 'license-checker-rseidelsohn';
import { projectRoot } from '../../shared/paths.js';
import type { LicensePolicy, PackageLicense } from './license-policy.js';

export interface InstalledLicense extends PackageLicense {
  /**
   * Installed only on some machines: on some platforms (its package.json names `os` or `cpu`, or the
   * lockfile marks it optional) or only beside the dev tools (`devOptional`: TypeScript, node-llama-cpp's
   * optional peer). NOTICE, which must come out the same everywhere, names these by rule, not by name.
   */
  variesByInstall: boolean;
  /** The package's own NOTICE file, which the Apache License 2.0 (section 4(d)) asks to pass on. */
  noticeText: string | undefined;
}

interface Manifest {
  name: string;
  version: string;
  os?: unknown;
  cpu?: unknown;
}

function readJson<T>(path: string): T {
  return JSON.parse(readFileSync(path, 'utf8')) as T;
}

function checkProduction(root: string): Promise<ModuleInfos> {
  return new Promise((resolve, reject) => init({ start: root, production: true }, (err, packages) => (err ? reject(err) : resolve(packages))));
}

/** The lockfile paths (`node_modules/a/node_modules/b`) of packages npm may leave out: optional, or optional unless dev. */
function optionalLockPaths(root: string): Set<string> {
  const lock = readJson<{ packages?: Record<string, { optional?: boolean; devOptional?: boolean }> }>(join(root, 'package-lock.json'));
  return new Set(Object.entries(lock.packages ?? {}).flatMap(([path, entry]) => (entry.optional === true || entry.devOptional === true ? [path] : [])));
}

function splitKey(key: string): { name: string; version: string } {
  const at = key.lastIndexOf('@');
  return { name: key.slice(0, at), version: key.slice(at + 1) };
}

/** Locale-free order, so NOTICE sorts the same on every machine. */
function byCodePoint(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Every installed production package but our own, sorted by name then version. */
export async function productionLicenses(root: string = projectRoot()): Promise<InstalledLicense[]> {
  const self = readJson<Manifest>(join(root, 'package.json'));
  const optional = optionalLockPaths(root);
  const packages = await checkProduction(root);
  return Object.entries(packages)
    .filter(([key]) => key !== `${self.name}@${self.version}`)
    .map(([key, info]) => {
      const manifest = info.path === undefined ? undefined : readJson<Manifest>(join(info.path, 'package.json'));
      const lockPath = info.path === undefined ? '' : info.path.slice(root.length + 1);
      const variesByInstall = manifest?.os !== undefined || manifest?.cpu !== undefined || optional.has(lockPath);
      const noticeText = info.noticeFile === undefined ? undefined : readFileSync(info.noticeFile, 'utf8');
      return { ...splitKey(key), license: info.licenses, variesByInstall, noticeText };
    })
    .sort((a, b) => byCodePoint(a.name, b.name) || byCodePoint(a.version, b.version));
}

export function readLicensePolicy(root: string = projectRoot()): LicensePolicy {
  return readJson<LicensePolicy>(join(root, 'cli', 'release', 'license-policy.json'));
}
