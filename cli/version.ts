/**
 * `semantic version`: our version and the llama.cpp release the addon was built against
 * (shared/version.ts). `--json` says everything a bug report needs about the build, in one object:
 * the versions, which llama.cpp libraries are linked and which devices their backends offer, and the
 * versions of the formats two builds must agree on (a supervisor and its workers, a cache dir shared
 * by several servers).
 */
import { versionInfo } from '../shared/version.js';
import { IPC_VERSION } from '../shared/protocol/ipc.js';
import { PROTOCOL_VERSION } from '../shared/protocol/messages.js';
import { CACHE_FORMAT } from '../worker/persistence/cache-file.js';
import { backendReport } from '../worker/engine/backend-report.js';

export const versionFlags = {
  json: { type: 'boolean', default: false, describe: 'Print JSON: versions, the llama.cpp libraries and devices, and the protocol and cache file versions.' },
} as const;

function versionJson(): object {
  const info = versionInfo();
  return {
    semantic: info.semantic,
    node: process.version,
    llamaCpp: info.llamaCpp ?? null,
    libraries: { package: info.llamaPackage ?? null, ...backendReport() },
    protocols: { ipc: IPC_VERSION, thread: PROTOCOL_VERSION, cacheFile: CACHE_FORMAT },
  };
}

export function printVersion(argv: Record<string, unknown>): void {
  if (argv.json === true) {
    process.stdout.write(JSON.stringify(versionJson(), null, 2) + '\n');
    return;
  }
  const info = versionInfo();
  process.stdout.write(`semantic ${info.semantic}\n`);
  process.stdout.write(`llama.cpp ${info.llamaCpp ?? 'unknown (deps/llama-libs.gypi is missing: run npm install)'}\n`);
}
