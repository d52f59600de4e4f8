// The package as a user gets it: `npm pack` holds what users need and nothing of the tests or benches,
// and `npm install -g --prefix TMP` of that tarball builds the addon there from the shipped llama.cpp
// headers and the platform's library package (Node's headers found locally, never downloaded), after
// which the installed `semantic` prints its version and serves the demo model it generates.
// Heavy: an addon compile and an install from npm's cache (the registry for what the cache lacks).
import t from 'tap';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { projectRoot } from '../../shared/paths.js';

interface Outcome {
  code: number | null;
  stdout: string;
  /** stdout and stderr as they came. */
  output: string;
  seconds: number;
}

const root = projectRoot();
const manifest = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { name: string; version: string };
const work = mkdtempSync(join(tmpdir(), 'semantic-package-'));
const prefix = join(work, 'prefix');

// npm run by `npm test` hands its settings to children as npm_* variables; the installs here must see
// only the user's npm config, as a user's would.
const cleanEnv = Object.fromEntries(Object.entries(process.env).filter(([name]) => !/^(npm_|SEMANTIC_)/i.test(name)));

t.setTimeout(600_000);
// The prefix holds about 160 MB: the addon, the libraries and every dependency.
t.teardown(() => rmSync(work, { recursive: true, force: true }));

function runToEnd(command: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = cleanEnv): Promise<Outcome> {
  const started = Date.now();
  const child = spawn(command, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
    output += chunk.toString();
  });
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  return new Promise((resolve) => {
    child.once('error', (error) => resolve({ code: -1, stdout, output: output + String(error), seconds: (Date.now() - started) / 1000 }));
    child.once('close', (code) => resolve({ code, stdout, output, seconds: (Date.now() - started) / 1000 }));
  });
}

interface Packed {
  filename: string;
  files: { path: string }[];
}

const bin = join(prefix, 'bin', 'semantic');
let tarball = join(work, `${manifest.name}-${manifest.version}.tgz`);

// The steps run in order, each in its subtest (tap runs a file's subtests one after another).
t.test('the tarball holds dist, the addon sources, the headers and the documents, and no tests or benches', async (t) => {
  // --ignore-scripts: `prepare` would recompile dist/ while other test files run from it; npm test built it.
  const pack = await runToEnd('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', work], root);
  if (pack.code !== 0) t.comment(pack.output);
  t.equal(pack.code, 0, 'npm pack exits 0');
  const packed = (JSON.parse(pack.stdout) as Packed[])[0]!;
  tarball = join(work, packed.filename);
  const paths = packed.files.map((file) => file.path);
  t.equal(packed.filename, `${manifest.name}-${manifest.version}.tgz`);
  const gyp = readFileSync(join(root, 'binding.gyp'), 'utf8');
  const sources = [...gyp.matchAll(/"(addon\/[^"]+\.cc)"/g)].map((match) => match[1]!);
  t.equal(sources.length, 6, 'binding.gyp names the six addon sources');
  const needed = ['package.json', 'README.md', 'LICENSE', 'NOTICE', 'CHANGELOG.md', 'binding.gyp', 'dist/cli/main.js', 'addon/install.mjs', 'addon/extract-llama-source.mjs'];
  const headers = ['deps/llama.cpp/.release', 'deps/llama.cpp/include/llama.h', 'deps/llama.cpp/ggml/include/ggml.h', 'deps/llama.cpp/models/ggml-vocab-qwen2.gguf'];
  for (const path of [...needed, ...sources, ...headers]) t.ok(paths.includes(path), `has ${path}`);
  const unwanted = paths.filter((path) => /^(test|bench|dist\/test|dist\/bench|build|node_modules|\.ci)\//.test(path) || path === 'deps/llama-libs.gypi' || path.endsWith('.map'));
  t.same(unwanted, [], 'no tests, benches, source maps, build outputs or machine-specific files');
  t.ok(
    paths.every(
      (path) => /^(dist|addon|deps\/llama\.cpp|docs|ops)\//.test(path) || ['package.json', 'README.md', 'LICENSE', 'NOTICE', 'CHANGELOG.md', 'binding.gyp'].includes(path),
    ),
    'nothing outside the listed folders and files',
  );
});

t.test('npm install -g --prefix builds the addon in the prefix, offline but for npm packages', async (t) => {
  const install = await runToEnd('npm', ['install', '-g', '--prefix', prefix, tarball, '--prefer-offline', '--no-audit', '--no-fund', '--foreground-scripts'], work);
  t.comment(`npm install -g of the tarball took ${install.seconds.toFixed(0)} s (addon compile included)`);
  if (install.code !== 0) t.comment(install.output.slice(-4000));
  t.equal(install.code, 0, 'npm install exits 0');
  const installed = join(prefix, 'lib', 'node_modules', 'semantic');
  const release = readFileSync(join(root, 'deps', 'llama.cpp', '.release'), 'utf8').split('\n')[0]!;
  t.ok(install.output.includes(`semantic: llama.cpp ${release} headers in ${installed}`), 'the headers the package ships are used');
  t.notMatch(install.output, /fetching node-llama-cpp|extracting the llama\.cpp headers/, 'the shipped headers need no node-llama-cpp source');
  t.notOk(existsSync(join(installed, 'node_modules', 'node-llama-cpp')), 'node-llama-cpp (every platform as optional dependencies) is not installed');
  const libraries = readdirSync(join(installed, 'node_modules', '@node-llama-cpp'));
  t.same(
    libraries.filter((name) => /cuda|vulkan/.test(name)),
    [],
    `no GPU build installed unasked (installed: ${libraries.join(', ')})`,
  );
  t.match(install.output, /linking .*@node-llama-cpp\/[a-z0-9-]+\/bins\/[a-z0-9-]+ \(the default for /, 'the platform package chosen by default');
  t.notMatch(install.output, /gyp http|gyp info download/, "node-gyp downloaded nothing: Node's headers were found locally");
  t.match(install.output, /gyp info ok/, 'node-gyp built the addon');
});

t.test('the installed semantic prints its version', async (t) => {
  const gypi = JSON.parse(readFileSync(join(root, 'deps', 'llama-libs.gypi'), 'utf8')) as { variables: { llama_release: string } };
  const version = await runToEnd(bin, ['version'], work);
  t.equal(version.code, 0, `exit 0 ${version.code === 0 ? '' : version.output}`);
  t.equal(version.stdout, `semantic ${manifest.version}\nllama.cpp ${gypi.variables.llama_release}\n`);
});

t.test('the installed semantic loads the backends of the library package in its own prefix', async (t) => {
  const installed = join(prefix, 'lib', 'node_modules', 'semantic');
  const version = await runToEnd(bin, ['version', '--json'], work);
  t.equal(version.code, 0, `exit 0 ${version.code === 0 ? '' : version.output}`);
  const report = JSON.parse(version.stdout) as { semantic: string; libraries: { package: string; dir: string; devices?: { type: string }[] } };
  t.equal(report.semantic, manifest.version);
  t.match(report.libraries.package, /^@node-llama-cpp\/[a-z0-9-]+$/);
  t.equal(report.libraries.dir.startsWith(join(installed, 'node_modules', report.libraries.package, 'bins')), true, report.libraries.dir);
  t.equal(report.libraries.devices?.filter((device) => device.type === 'cpu').length, 1, 'the CPU backend loaded');
});

interface Served {
  port: number;
  stop(): Promise<number | null>;
}

/** `semantic serve` from the prefix with a fresh user cache, so the demo model is generated from what the package ships. */
function serveDemo(): Promise<Served> {
  const env = { ...cleanEnv, XDG_CACHE_HOME: join(work, 'cache') };
  const child = spawn(bin, ['serve', '--port', '0', '--threads', '1'], { cwd: work, env, stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const stop = (): Promise<number | null> => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    return exited;
  };
  return new Promise((resolve, reject) => {
    createInterface({ input: child.stdout }).on('line', (line) => {
      let entry: { msg?: string; port?: number };
      try {
        entry = JSON.parse(line) as typeof entry;
      } catch {
        return;
      }
      if (entry.msg === 'ready' && typeof entry.port === 'number') resolve({ port: entry.port, stop });
    });
    void exited.then((code) => reject(new Error(`semantic serve exited with ${String(code)} before it was ready: ${stderr}`)));
  });
}

t.test('the installed semantic serves the demo model: one chat completion, 200', async (t) => {
  const server = await serveDemo();
  t.teardown(() => server.stop());
  const response = await fetch(`http://127.0.0.1:${server.port}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'semantic-tiny', messages: [{ role: 'user', content: 'Hello' }], max_tokens: 4, temperature: 0 }),
  });
  t.equal(response.status, 200);
  const body = (await response.json()) as { model: string; choices: { message: { content: string }; finish_reason: string }[]; usage: { completion_tokens: number } };
  t.equal(body.model, 'semantic-tiny');
  t.equal(body.choices.length, 1);
  t.type(body.choices[0]!.message.content, 'string');
  t.equal(body.usage.completion_tokens, 4);
  t.equal(body.choices[0]!.finish_reason, 'length');
  t.equal(await server.stop(), 0, 'a SIGTERM drains and exits 0');
});
