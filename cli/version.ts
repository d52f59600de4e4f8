/**
 * `semantic version`: our version and the llama.cpp release the addon was built against
 * (shared/version.ts).
 */
import { versionInfo } from '../shared/version.js';

export function printVersion(): void {
  const info = versionInfo();
  process.stdout.write(`semantic ${info.semantic}\n`);
  process.stdout.write(`llama.cpp ${info.llamaCpp ?? 'unknown (deps/llama-libs.gypi is missing: run npm install)'}\n`);
}
