// `semantic version --json`, spawned from dist/ (npm test builds first): exactly the keys a bug report
// needs, each equal to its source of truth (package.json, this Node, what the install step recorded,
// the protocol and cache file constants), and the devices of the backends the real addon loads.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { projectRoot } from '../../shared/paths.js';
import { IPC_VERSION } from '../../shared/protocol/ipc.js';
import { PROTOCOL_VERSION } from '../../shared/protocol/messages.js';
import { CACHE_FORMAT } from '../../worker/persistence/cache-file.js';
import { runCli } from '../helpers/server.js';

const semantic = runCli;

const root = projectRoot();
const manifest = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string };
const gypi = JSON.parse(readFileSync(join(root, 'deps', 'llama-libs.gypi'), 'utf8')) as {
  variables: { llama_release: string; llama_lib_dir: string; llama_package?: string };
};

t.test('version --json: versions, linked libraries, devices and protocol versions, each from its source', async (t) => {
  const { code, stdout, stderr } = await semantic(['version', '--json']);
  t.equal(code, 0, stderr);
  const report = JSON.parse(stdout) as Record<string, unknown> & { libraries: Record<string, unknown>; protocols: Record<string, unknown> };
  t.same(Object.keys(report), ['semantic', 'node', 'llamaCpp', 'libraries', 'protocols']);
  t.equal(report.semantic, manifest.version);
  t.equal(report.node, process.version);
  t.equal(report.llamaCpp, gypi.variables.llama_release);
  t.same(Object.keys(report.libraries), ['package', 'dir', 'devices']);
  t.equal(report.libraries.package, gypi.variables.llama_package || null, 'null for SEMANTIC_LLAMA_LIB_DIR (or a gypi written before the package was recorded)');
  t.equal(report.libraries.dir, gypi.variables.llama_lib_dir);
  const devices = report.libraries.devices as { name: string; description: string; type: string }[];
  t.equal(devices.filter((device) => device.type === 'cpu').length, 1, 'the CPU backend is always loaded');
  for (const device of devices) t.same(Object.keys(device), ['name', 'description', 'type']);
  t.same(report.protocols, { ipc: IPC_VERSION, thread: PROTOCOL_VERSION, cacheFile: CACHE_FORMAT });
});

t.test('version --json with backends that do not load: the error in place of the devices, the rest intact, exit 0', async (t) => {
  const { code, stdout, stderr } = await semantic(['version', '--json'], { SEMANTIC_LLAMA_LIB_DIR: '/nonexistent-llama-libs' });
  t.equal(code, 0, stderr);
  const report = JSON.parse(stdout) as { semantic: string; libraries: Record<string, unknown> };
  t.equal(report.semantic, manifest.version);
  t.same(Object.keys(report.libraries), ['package', 'dir', 'error']);
  t.equal(report.libraries.dir, '/nonexistent-llama-libs');
  t.match(report.libraries.error, /no ggml backend could be loaded from \/nonexistent-llama-libs/);
});

t.test('plain version keeps its two lines', async (t) => {
  const { code, stdout, stderr } = await semantic(['version']);
  t.equal(code, 0, stderr);
  t.equal(stdout, `semantic ${manifest.version}\nllama.cpp ${gypi.variables.llama_release}\n`);
});
