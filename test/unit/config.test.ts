// The config is checked at startup: each source overrides the one below it (defaults < file < env <
// flags), every bad value is refused with a message naming the option, where the value came from and
// what is allowed, and a config file cannot carry keys we do not know.
import t, { type Test } from 'tap';
import { statfsSync, writeFileSync } from 'node:fs';
import { totalmem } from 'node:os';
import { join } from 'node:path';
import { userCacheDir } from '../../shared/paths.js';
import { autoContextSize, autoDiskBytes, autoRamBytes, cacheFileBytes, freeDiskBytes, kvBytesPerToken, usableMemoryBytes } from '../../shared/budgets.js';
import { ConfigError, configFromJson, envName, flagName, loadConfig, optionNames, optionSpecs, type OptionName } from '../../shared/config.js';
import { threadsPerProcess, toServerSettings } from '../../shared/server-settings.js';
import { bucketsAllowed } from '../../shared/metrics-buckets.js';

function writeConfigFile(t: Test, contents: unknown): string {
  const dir = t.testdir();
  const path = join(dir, 'semantic.json');
  writeFileSync(path, typeof contents === 'string' ? contents : JSON.stringify(contents));
  return path;
}

/** The problems of the ConfigError `load` throws; fails the test when it does not throw one. */
function problemsOf(t: Test, load: () => unknown): string[] {
  try {
    load();
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  t.fail('expected a ConfigError');
  return [];
}

t.test('defaults: every option has one and they pass their own checks', async (t) => {
  const config = loadConfig();
  t.same(config, {
    host: '127.0.0.1',
    port: 8080,
    model: undefined,
    modelId: undefined,
    modelAlias: [],
    contextSize: -1,
    maxSequences: 8,
    batchTokens: 512,
    threads: 0,
    kvType: 'f16',
    flashAttention: false,
    kvUnified: true,
    idleAgents: 'auto',
    prefixSharing: 'key',
    gpuLayers: 0,
    maxQueued: 64,
    maxQueuedTokens: -1,
    maxQueuedPerAgent: 4,
    modelsDir: undefined,
    cacheDir: undefined,
    ramCacheBytes: -1,
    diskCacheBytes: -1,
    apiKeys: undefined,
    apiKeysFile: undefined,
    adminKey: undefined,
    metricsAccess: 'public',
    metricsBuckets: undefined,
    rateLimitPerKey: 0,
    rateLimitPerAgent: 0,
    rateLimitBurst: 10,
    drainTimeout: 30,
    readyMaxPoolPercent: 90,
    maxBodyBytes: 4 * 1024 * 1024,
    headersTimeout: 10,
    requestTimeout: 60,
    logLevel: 'info',
    logFile: undefined,
    logFileSize: '10m',
    logFileFrequency: 'daily',
    logFileCount: 10,
    scrapeTimeoutMs: 3000,
    workers: 2,
  });
  for (const option of optionNames) t.ok(optionSpecs[option].doc.length > 20, `${option} is documented`);
});

t.test('names: kebab-case flags and SCREAMING_SNAKE env variables', async (t) => {
  t.equal(flagName('contextSize'), 'context-size');
  t.equal(envName('contextSize'), 'SEMANTIC_CONTEXT_SIZE');
  t.equal(envName('maxBodyBytes'), 'SEMANTIC_MAX_BODY_BYTES');
  t.equal(envName('port'), 'SEMANTIC_PORT');
});

t.test('precedence: default < file < env < flag, one layer at a time', async (t) => {
  const file = writeConfigFile(t, { port: 1001, contextSize: 1024, maxSequences: 2, batchTokens: 64 });
  const env = { SEMANTIC_CONTEXT_SIZE: '2048', SEMANTIC_MAX_SEQUENCES: '3' };
  const flags = { maxSequences: '4' };
  const config = loadConfig({ file, env, flags });
  t.equal(config.threads, 0, 'default where nothing sets it');
  t.equal(config.batchTokens, 64, 'file over default');
  t.equal(config.port, 1001, 'file where env and flags are silent');
  t.equal(config.contextSize, 2048, 'env over file');
  t.equal(config.maxSequences, 4, 'flag over env and file');
});

t.test('env and flag text is read by the option kind', async (t) => {
  const config = loadConfig({
    env: { SEMANTIC_FLASH_ATTENTION: 'true', SEMANTIC_KV_TYPE: 'q8_0', SEMANTIC_GPU_LAYERS: '-1', SEMANTIC_PORT: '' },
    flags: { model: '/Users/me/My Models/a.gguf', logLevel: 'debug', threads: ' 4 ' },
  });
  t.equal(config.flashAttention, true);
  t.equal(config.kvType, 'q8_0');
  t.equal(config.gpuLayers, -1);
  t.equal(config.port, 8080, 'an empty env variable counts as unset');
  t.equal(config.model, '/Users/me/My Models/a.gguf', 'paths may hold spaces');
  t.equal(config.logLevel, 'debug');
  t.equal(config.threads, 4);
  t.equal(loadConfig({ flags: { flashAttention: false }, env: { SEMANTIC_FLASH_ATTENTION: '1' } }).flashAttention, false, 'a boolean flag from yargs wins');
});

t.test('modelAlias: a list from a repeated flag, a comma-separated flag or env value, or a JSON array in a file', async (t) => {
  t.strictSame(loadConfig({ flags: { modelAlias: ['claude-sonnet-4-5', 'claude-haiku-4-5,gpt-4o'] } }).modelAlias, ['claude-sonnet-4-5', 'claude-haiku-4-5', 'gpt-4o']);
  t.strictSame(loadConfig({ flags: { modelAlias: 'a' } }).modelAlias, ['a']);
  t.strictSame(loadConfig({ env: { SEMANTIC_MODEL_ALIAS: 'a, b' } }).modelAlias, ['a', 'b']);
  t.strictSame(loadConfig({ env: { SEMANTIC_MODEL_ALIAS: 'a' }, flags: { modelAlias: 'b' } }).modelAlias, ['b'], 'flags replace the env list');
  t.strictSame(configFromJson('{"modelAlias":["x","y"]}', 'test').modelAlias, ['x', 'y']);
  t.strictSame(
    problemsOf(t, () => loadConfig({ flags: { modelAlias: 'a,,b' } })),
    ['modelAlias must be up to 64 names of 1 to 256 characters without whitespace or commas; got ["a","","b"] from flag --model-alias'],
  );
  t.strictSame(
    problemsOf(t, () => loadConfig({ flags: { modelAlias: 'my model' } })),
    ['modelAlias must be up to 64 names of 1 to 256 characters without whitespace or commas; got ["my model"] from flag --model-alias'],
  );
  t.strictSame(toServerSettings(loadConfig({ flags: { modelAlias: 'claude-sonnet-4-5' } }), '/m.gguf').inference.modelAliases, ['claude-sonnet-4-5']);
});

const invalidValues: [OptionName, string, string][] = [
  ['host', 'my host', 'host must be a host name or IP address (letters, digits, ".", ":", "_", "-"); got "my host" from flag --host'],
  ['port', '65536', 'port must be an integer from 0 to 65535; got 65536 from flag --port'],
  ['port', 'http', 'port must be an integer from 0 to 65535; got "http" from flag --port'],
  ['model', '', 'model must be a string of 1 to 4096 characters without control characters; got "" from flag --model'],
  ['model', 'a.gguf\n{"msg":"forged"}', 'model must be a string of 1 to 4096 characters without control characters; got "a.gguf\\n{\\"msg\\":\\"forged\\"}" from flag --model'],
  ['modelId', 'my model', 'modelId must be a string of 1 to 256 characters without whitespace; got "my model" from flag --model-id'],
  ['modelAlias', 'a,,b', 'modelAlias must be up to 64 names of 1 to 256 characters without whitespace or commas; got ["a","","b"] from flag --model-alias'],
  ['contextSize', '-5', 'contextSize must be -1 (auto) or an integer from 16 to 1048576; got -5 from flag --context-size'],
  ['contextSize', '1.5', 'contextSize must be -1 (auto) or an integer from 16 to 1048576; got "1.5" from flag --context-size'],
  ['maxSequences', '0', 'maxSequences must be an integer from 1 to 256; got 0 from flag --max-sequences'],
  ['batchTokens', '65537', 'batchTokens must be an integer from 1 to 65536; got 65537 from flag --batch-tokens'],
  ['threads', '-1', 'threads must be an integer from 0 to 1024; got -1 from flag --threads'],
  ['kvType', 'q5_1', 'kvType must be one of f16, q8_0, q4_0; got "q5_1" from flag --kv-type'],
  ['flashAttention', 'maybe', 'flashAttention must be true or false; got "maybe" from flag --flash-attention'],
  ['kvUnified', 'split', 'kvUnified must be true or false; got "split" from flag --kv-unified'],
  ['idleAgents', 'drop', 'idleAgents must be one of auto, spill, keep; got "drop" from flag --idle-agents'],
  ['prefixSharing', 'everyone', 'prefixSharing must be one of key, all, off; got "everyone" from flag --prefix-sharing'],
  ['gpuLayers', '-2', 'gpuLayers must be an integer from -1 to 4096; got -2 from flag --gpu-layers'],
  ['maxQueued', '-1', 'maxQueued must be an integer from 0 to 100000; got -1 from flag --max-queued'],
  ['maxQueuedPerAgent', '-1', 'maxQueuedPerAgent must be an integer from 0 to 100000; got -1 from flag --max-queued-per-agent'],
  ['maxQueuedTokens', 'x', 'maxQueuedTokens must be -1 (auto) or an integer from 0 to 100000000; got "x" from flag --max-queued-tokens'],
  ['modelsDir', '/models\r', 'modelsDir must be a string of 1 to 4096 characters without control characters; got "/models\\r" from flag --models-dir'],
  ['cacheDir', '', 'cacheDir must be a string of 1 to 4096 characters without control characters; got "" from flag --cache-dir'],
  ['ramCacheBytes', '-2', 'ramCacheBytes must be -1 (auto) or an integer from 0 to 1099511627776; got -2 from flag --ram-cache-bytes'],
  ['diskCacheBytes', '1GiB', 'diskCacheBytes must be -1 (auto) or an integer from 0 to 1125899906842624; got "1GiB" from flag --disk-cache-bytes'],
  [
    'apiKeys',
    'good-key-0001,short',
    'apiKeys must be a comma-separated list of keys of 8 to 256 printable characters without spaces or commas; got a value of 19 characters (not shown: it holds keys) from flag --api-keys',
  ],
  ['apiKeysFile', '', 'apiKeysFile must be a string of 1 to 4096 characters without control characters; got "" from flag --api-keys-file'],
  [
    'adminKey',
    'has space in it',
    'adminKey must be a key of 8 to 256 printable characters without spaces or commas; got a value of 15 characters (not shown: it holds keys) from flag --admin-key',
  ],
  ['rateLimitPerKey', '-1', 'rateLimitPerKey must be an integer from 0 to 1000000; got -1 from flag --rate-limit-per-key'],
  ['rateLimitPerAgent', 'x', 'rateLimitPerAgent must be an integer from 0 to 1000000; got "x" from flag --rate-limit-per-agent'],
  ['rateLimitBurst', '0', 'rateLimitBurst must be an integer from 1 to 1000000; got 0 from flag --rate-limit-burst'],
  ['drainTimeout', '0', 'drainTimeout must be an integer from 1 to 3600; got 0 from flag --drain-timeout'],
  ['readyMaxPoolPercent', '101', 'readyMaxPoolPercent must be an integer from 1 to 100; got 101 from flag --ready-max-pool-percent'],
  ['maxBodyBytes', '100', 'maxBodyBytes must be an integer from 1024 to 268435456; got 100 from flag --max-body-bytes'],
  ['headersTimeout', '0', 'headersTimeout must be an integer from 1 to 3600; got 0 from flag --headers-timeout'],
  ['requestTimeout', '3601', 'requestTimeout must be an integer from 1 to 3600; got 3601 from flag --request-timeout'],
  ['metricsAccess', 'open', 'metricsAccess must be one of public, user, admin; got "open" from flag --metrics-access'],
  ['metricsBuckets', '{"batchSize":[2,1]}', `metricsBuckets must be ${bucketsAllowed}; got ${JSON.stringify('{"batchSize":[2,1]}')} from flag --metrics-buckets`],
  ['logLevel', 'verbose', 'logLevel must be one of trace, debug, info, warn, error, fatal, silent; got "verbose" from flag --log-level'],
  ['workers', '0', 'workers must be an integer from 1 to 64; got 0 from flag --workers'],
  ['logFile', '/var/log/x\n.log', 'logFile must be a string of 1 to 4096 characters without control characters; got "/var/log/x\\n.log" from flag --log-file'],
  ['logFileFrequency', 'weekly', 'logFileFrequency must be one of daily, hourly, none; got "weekly" from flag --log-file-frequency'],
  ['logFileSize', '10', 'logFileSize must be a size: a number of 1 to 6 digits followed by k, m or g (KiB, MiB, GiB), e.g. 10m; got "10" from flag --log-file-size'],
  ['logFileCount', '0', 'logFileCount must be an integer from 1 to 10000; got 0 from flag --log-file-count'],
  ['scrapeTimeoutMs', '10', 'scrapeTimeoutMs must be an integer from 100 to 60000; got 10 from flag --scrape-timeout-ms'],
];

t.test('each invalid option is refused with a message naming it, its source and the allowed range', async (t) => {
  const covered = new Set(invalidValues.map(([option]) => option));
  t.same([...covered].sort(), [...optionNames].sort(), 'every option has a negative case');
  for (const [option, value, message] of invalidValues) {
    t.same(
      problemsOf(t, () => loadConfig({ flags: { [option]: value } })),
      [message],
      `${option} = ${JSON.stringify(value)}`,
    );
  }
});

t.test('the message names the env variable or the file a bad value came from', async (t) => {
  t.same(
    problemsOf(t, () => loadConfig({ env: { SEMANTIC_CONTEXT_SIZE: 'big' } })),
    ['contextSize must be -1 (auto) or an integer from 16 to 1048576; got "big" from env SEMANTIC_CONTEXT_SIZE'],
  );
  const file = writeConfigFile(t, { contextSize: '4096', port: -1 });
  t.same(
    problemsOf(t, () => loadConfig({ file })),
    [
      `port must be an integer from 0 to 65535; got -1 from config file ${file}`,
      `contextSize must be -1 (auto) or an integer from 16 to 1048576; got "4096" from config file ${file}`,
    ],
    'file values keep their JSON types: a string is not a number; every problem is listed',
  );
});

t.test('a quantised KV cache needs flash attention', async (t) => {
  t.same(
    problemsOf(t, () => loadConfig({ flags: { kvType: 'q4_0' } })),
    ['kvType q4_0 needs flashAttention true: llama.cpp quantises the V cache only with flash attention (pass --flash-attention, or use kvType f16)'],
  );
  t.equal(loadConfig({ flags: { kvType: 'q4_0', flashAttention: true } }).kvType, 'q4_0');
});

t.test('config file: unknown keys, bad JSON, non-objects and missing files are refused', async (t) => {
  const typo = writeConfigFile(t, { port: 9000, contextsize: 4096 });
  t.same(
    problemsOf(t, () => loadConfig({ file: typo })),
    [`config file ${typo}: unknown option "contextsize" (known options: ${optionNames.join(', ')})`],
  );
  const broken = writeConfigFile(t, '{"port": 80,');
  t.match(
    problemsOf(t, () => loadConfig({ file: broken })),
    [new RegExp(`^config file ${broken} is not valid JSON: `)],
  );
  const list = writeConfigFile(t, [1, 2]);
  t.same(
    problemsOf(t, () => loadConfig({ file: list })),
    [`config file ${list} must hold a JSON object of options`],
  );
  const missing = join(t.testdir(), 'nope.json');
  t.match(
    problemsOf(t, () => loadConfig({ file: missing })),
    [new RegExp(`^config file ${missing} cannot be read: ENOENT`)],
  );
});

t.test('a config handed to a worker as JSON gets the same checks', async (t) => {
  const config = loadConfig({ flags: { port: '9', model: '/m.gguf' } });
  t.same(configFromJson(JSON.stringify(config), 'env SEMANTIC_WORKER_CONFIG'), config, 'round trip');
  t.same(
    problemsOf(t, () => configFromJson('{"port":"9"}', 'env SEMANTIC_WORKER_CONFIG')),
    ['port must be an integer from 0 to 65535; got "9" from env SEMANTIC_WORKER_CONFIG'],
  );
  t.same(
    problemsOf(t, () => configFromJson('{"extra":1}', 'env X')),
    [`env X: unknown option "extra" (known options: ${optionNames.join(', ')})`],
  );
});

t.test('server settings: inference options from the config, model id from the file name', async (t) => {
  const flags = { contextSize: '4096', kvType: 'q8_0', flashAttention: true, gpuLayers: '-1', port: '0', ramCacheBytes: '1024', diskCacheBytes: '0' };
  const config = loadConfig({ flags });
  t.same(toServerSettings(config, '/models/Qwen2.5-0.5B-Instruct.Q8_0.gguf'), {
    host: '127.0.0.1',
    port: 0,
    maxBodyBytes: 4 * 1024 * 1024,
    headersTimeoutMs: 10_000,
    requestTimeoutMs: 60_000,
    modelsDir: '/models',
    inference: {
      modelPath: '/models/Qwen2.5-0.5B-Instruct.Q8_0.gguf',
      modelId: 'Qwen2.5-0.5B-Instruct.Q8_0',
      modelAliases: [],
      contextSize: 4096,
      maxSequences: 8,
      batchTokens: 512,
      threads: 0,
      kvType: 'q8_0',
      flashAttention: true,
      kvUnified: true,
      idleAgents: 'auto',
      gpuLayers: -1,
      ramBudgetBytes: 1024,
      maxQueued: 64,
      maxQueuedTokens: -1,
      maxQueuedPerAgent: 4,
      cacheDir: join(userCacheDir(), 'agents'),
      diskBudgetBytes: 0,
    },
    access: { apiKeys: [], adminKey: undefined, metricsAccess: 'public', perKeyPerMinute: 0, perAgentPerMinute: 0, burst: 10, prefixSharing: 'key' },
  });
  t.equal(toServerSettings(loadConfig({ flags: { modelId: 'agent-model' } }), '/m.gguf').inference.modelId, 'agent-model', 'modelId wins');
});

t.test('default threads: the CPUs divided among the serving processes, at least one each; a set value wins', async (t) => {
  t.equal(threadsPerProcess(0, 16, 1), 16, 'serve: every CPU');
  t.equal(threadsPerProcess(0, 2, 2), 1, 'supervise --workers 2 on 2 CPUs: one each, not two');
  t.equal(threadsPerProcess(0, 16, 3), 5, '16 CPUs, 3 workers: 5 each, rounded down so the sum stays within the CPUs');
  t.equal(threadsPerProcess(0, 2, 8), 1, 'more workers than CPUs: still one each');
  t.equal(threadsPerProcess(0, 1, 1), 1);
  t.equal(threadsPerProcess(3, 16, 4), 3, '--threads given: as given, whatever the workers');
});

t.test('API keys from the option and from a file (comments and blank lines skipped); a bad line stops startup', async (t) => {
  const file = join(t.testdir({ 'keys.txt': '# team keys\nfile-key-0001\n\n  file-key-0002  \n' }), 'keys.txt');
  const settings = toServerSettings(loadConfig({ env: { SEMANTIC_API_KEYS: 'env-key-0001,env-key-0002' }, flags: { apiKeysFile: file } }), '/m.gguf');
  t.same(settings.access.apiKeys, ['env-key-0001', 'env-key-0002', 'file-key-0001', 'file-key-0002']);
  const bad = join(t.testdir({ 'keys.txt': 'file-key-0001\nshort\n' }), 'keys.txt');
  t.same(
    problemsOf(t, () => toServerSettings(loadConfig({ flags: { apiKeysFile: bad } }), '/m.gguf')),
    [`apiKeysFile ${bad}: line 2 is not a key of 8 to 256 printable characters without spaces or commas`],
  );
  t.throws(() => toServerSettings(loadConfig({ flags: { apiKeysFile: '/nonexistent/keys' } }), '/m.gguf'), { code: 'ERR_INVALID_CONFIG' });
});

const GiB = 1024 * 1024 * 1024;

t.test('auto budgets: a quarter of memory up to 8 GiB; a quarter of free + held disk up to 64 GiB', async (t) => {
  t.equal(autoRamBytes(16 * GiB), 4 * GiB);
  t.equal(autoRamBytes(64 * GiB), 8 * GiB, 'capped');
  t.equal(autoRamBytes(1001), 250, 'whole bytes');
  t.equal(autoDiskBytes(100 * GiB, 0), 25 * GiB);
  t.equal(autoDiskBytes(75 * GiB, 25 * GiB), 25 * GiB, 'a full cache does not shrink its own budget across restarts');
  t.equal(autoDiskBytes(1000 * GiB, 0), 64 * GiB, 'capped');
  const memory = usableMemoryBytes();
  t.ok(memory > 0 && memory <= totalmem(), "memory is the machine's or the cgroup limit, whichever is lower");
});

t.test('auto budgets are resolved in the server settings; explicit values pass through', async (t) => {
  const dir = t.testdir({ 'a.safetensors': 'x'.repeat(4096), 'b.safetensors.123.456.tmp': 'x'.repeat(100), 'notes.txt': 'x' });
  t.equal(cacheFileBytes(dir), 4096, "only agents' cache files count as held");
  t.equal(cacheFileBytes(join(dir, 'missing')), 0);
  const fresh = join(dir, 'not', 'made', 'yet');
  const { bavail, bsize } = statfsSync(dir);
  t.ok(Math.abs(freeDiskBytes(fresh) - bavail * bsize) < GiB, 'the free space of the nearest existing ancestor');

  const auto = toServerSettings(loadConfig({ flags: { cacheDir: dir } }), '/m.gguf').inference;
  t.equal(auto.ramBudgetBytes, Math.min(Math.floor(usableMemoryBytes() / 4), 8 * GiB));
  // Other processes write to the same disk meanwhile: the free space is compared to within 1 GiB.
  const expected = autoDiskBytes(bavail * bsize, 4096);
  t.ok(auto.diskBudgetBytes > 0 && auto.diskBudgetBytes <= 64 * GiB && Math.abs(auto.diskBudgetBytes - expected) < GiB, `disk budget ${auto.diskBudgetBytes} ≈ ${expected}`);

  const fixed = toServerSettings(loadConfig({ flags: { cacheDir: dir, ramCacheBytes: '0', diskCacheBytes: '123' } }), '/m.gguf').inference;
  t.same([fixed.ramBudgetBytes, fixed.diskBudgetBytes], [0, 123]);
  t.equal(configFromJson(JSON.stringify(loadConfig()), 'env X').diskCacheBytes, -1, 'a worker gets -1 and sizes it on its own machine');
});

t.test('auto context: the training context, at most what fits in an eighth of memory, in multiples of 256', async (t) => {
  const qwen05b = { layerCount: 24, headCount: 14, headCountKv: 2, embeddingLength: 896 };
  t.equal(kvBytesPerToken(qwen05b, 'f16'), 24 * 2 * 2 * 64 * 2, '12 KiB a token for the Qwen2.5-0.5B shape at f16');
  t.equal(kvBytesPerToken(qwen05b, 'q8_0'), 24 * 2 * 2 * 64 * (34 / 32));
  t.equal(autoContextSize(32768, 12288, 24 * GiB), 32768, 'the whole training context fits easily in 24 GiB');
  t.equal(autoContextSize(32768, 12288, 512 * 1024 * 1024), 5376, '64 MiB of KV: 5461 tokens, down to a multiple of 256');
  t.equal(autoContextSize(0, 12288, 24 * GiB), 4096, 'no training context in the GGUF: 4096');
  t.equal(autoContextSize(32768, 12288, 1024), 256, 'never below 256');
  t.equal(loadConfig({ flags: { contextSize: '-1' } }).contextSize, -1, '-1 is accepted as auto');
});
