// The real `semantic` command, spawned from dist/ (npm test builds first): exit codes, what it prints,
// and that a wrong command line stops it before anything starts (exit 2, a message naming the option).
import t from 'tap';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { projectRoot } from '../../shared/paths.js';
import { runCli } from '../helpers/server.js';

const semantic = runCli;

t.test('version prints our version and the llama.cpp release the addon links', async (t) => {
  const { code, stdout, stderr } = await semantic(['version']);
  const manifest = JSON.parse(readFileSync(join(projectRoot(), 'package.json'), 'utf8')) as { version: string };
  const gypi = JSON.parse(readFileSync(join(projectRoot(), 'deps', 'llama-libs.gypi'), 'utf8')) as { variables: { llama_release: string } };
  t.equal(code, 0, stderr);
  t.equal(stdout, `semantic ${manifest.version}\nllama.cpp ${gypi.variables.llama_release}\n`);
});

t.test('config prints the effective config with the flags applied', async (t) => {
  const { code, stdout, stderr } = await semantic(['config', '--port', '9', '--context-size', '4096']);
  t.equal(code, 0, stderr);
  const config = JSON.parse(stdout) as Record<string, unknown>;
  t.match(config, { port: 9, contextSize: 4096, host: '127.0.0.1', maxSequences: 8, kvType: 'f16', workers: 2 });
  t.type(config.model, 'string', 'the demo model path when no --model is given');
  t.type(config.modelId, 'string');
});

t.test('config layers through the real CLI: file < env < flag', async (t) => {
  const file = join(t.testdir(), 'semantic.json');
  writeFileSync(file, JSON.stringify({ port: 1000, maxSequences: 2, batchTokens: 128 }));
  const { code, stdout, stderr } = await semantic(['config', '--config', file, '--max-sequences', '4'], {
    SEMANTIC_PORT: '2000',
    SEMANTIC_MAX_SEQUENCES: '3',
    SEMANTIC_MODEL: '/models/chat.gguf',
  });
  t.equal(code, 0, stderr);
  t.match(JSON.parse(stdout), { batchTokens: 128, port: 2000, maxSequences: 4, model: '/models/chat.gguf', modelId: 'chat' });
});

t.test('a bad option value exits 2 before starting, naming the option and its flag', async (t) => {
  const { code, stdout, stderr } = await semantic(['serve', '--context-size', '-5']);
  t.equal(code, 2);
  t.equal(stdout, '', 'nothing started, nothing logged');
  t.match(stderr, 'contextSize must be -1 (auto) or an integer from 16 to 1048576; got -5 from flag --context-size');
});

t.test('an unknown flag, an unknown command and no command exit 2 with a message', async (t) => {
  const unknownFlag = await semantic(['serve', '--contxt-size', '4096']);
  t.equal(unknownFlag.code, 2);
  t.match(unknownFlag.stderr, /Unknown argument: contxt-size/);
  const unknownCommand = await semantic(['serv']);
  t.equal(unknownCommand.code, 2);
  t.match(unknownCommand.stderr, /serve/);
  const none = await semantic([]);
  t.equal(none.code, 2);
  t.match(none.stderr, /Name a command/);
});

t.test('a config file with an unknown key exits 2 naming the key', async (t) => {
  const file = join(t.testdir(), 'semantic.json');
  writeFileSync(file, JSON.stringify({ contextsize: 4096 }));
  const { code, stderr } = await semantic(['serve', '--config', file]);
  t.equal(code, 2);
  t.match(stderr, `config file ${file}: unknown option "contextsize"`);
});

t.test('a --model that does not exist exits 2 before loading anything', async (t) => {
  const missing = join(t.testdir(), 'missing.gguf');
  const { code, stdout, stderr } = await semantic(['serve', '--model', missing, '--port', '0']);
  t.equal(code, 2);
  t.equal(stdout, '');
  t.match(stderr, `model ${missing} cannot be opened: ENOENT`);
});

t.test('the hidden worker command refuses to run without a supervisor', async (t) => {
  const { code, stderr } = await semantic(['worker']);
  t.equal(code, 2);
  t.match(stderr, /started by `semantic supervise`/);
  const help = await semantic(['--help']);
  t.equal(help.code, 0);
  t.notMatch(help.stdout, /semantic worker/, 'not listed in --help');
  t.match(help.stdout, /serve[\s\S]*supervise[\s\S]*version[\s\S]*config[\s\S]*make-model/);
});
