/**
 * What `semantic version --json` says of the native side: the folder ggml's backends were loaded from
 * and the devices they offer (a GPU backend appears only when its library and its runtime load). It
 * loads the addon, which may fail (not built, libraries moved): that is reported, not thrown, since
 * the rest of the version is still worth printing. The `version` command's process runs no inference
 * thread, so loading the addon on its main thread shares llama.cpp state with nothing.
 */
import { backendsDir, loadAddon, type Device } from './addon.js';

export type BackendReport = { dir: string; devices: Pick<Device, 'name' | 'description' | 'type'>[] } | { dir: string | null; error: string };

export function backendReport(): BackendReport {
  let dir: string | null = null;
  try {
    dir = backendsDir();
    const devices = loadAddon()
      .devices()
      .map(({ name, description, type }) => ({ name, description, type }));
    return { dir, devices };
  } catch (error) {
    return { dir, error: error instanceof Error ? error.message : String(error) };
  }
}
