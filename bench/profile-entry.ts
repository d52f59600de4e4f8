/**
 * The server's entry under clinic (bench/profile.ts): `semantic` itself, with its worker threads
 * started without clinic's preloads. Clinic preloads its samplers through NODE_OPTIONS, and a worker
 * thread runs the process's preloads again: every inference and piscina thread would run doctor's
 * sampler too, each truncating and interleaving writes to the one data file (clinic then fails with
 * "Decoded message is not valid"). A worker given an `env` of its own parses NODE_OPTIONS from that
 * env instead, so each Worker gets this process's env less NODE_OPTIONS: the samplers run on the main
 * thread only (doctor's CPU and memory graphs are still the whole process's).
 */
import { createRequire, syncBuiltinESMExports } from 'node:module';
import type { WorkerOptions } from 'node:worker_threads';

const workerThreads = createRequire(import.meta.url)('node:worker_threads') as typeof import('node:worker_threads');
const cleanEnv = { ...process.env };
delete cleanEnv['NODE_OPTIONS'];
const ClinicWorker = workerThreads.Worker;
workerThreads.Worker = class extends ClinicWorker {
  constructor(filename: string | URL, options: WorkerOptions = {}) {
    super(filename, { ...options, env: options.env ?? cleanEnv });
  }
};
syncBuiltinESMExports();
await import('../cli/main.js');
