// The admin API's pure parts without a model: runtime limits (applied, bounded by n_batch, nothing
// changed on refusal), clearing idle agents' caches per tier (busy agents skipped, what a kept disk
// tier lacks written first), generations held during a swap (bounded, sent on or 404), the HTTP
// layer's body and model file checks, and where each model's cache files live.
import t from 'tap';
import { mkdirSync, mkdtempSync, realpathSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import { applyLimits } from '../../worker/engine/engine-admin.js';
import type { EngineSettings } from '../../worker/engine/settings.js';
import type { QueueLimits } from '../../worker/engine/queue-budget.js';
import { clearIdleCaches, type AgentSources } from '../../worker/engine/kv/agents.js';
import { AgentTiers } from '../../worker/engine/kv/tiers.js';
import { BlockPool } from '../../worker/engine/kv/block-pool.js';
import type { Context } from '../../worker/engine/addon.js';
import type { DiskTier } from '../../worker/persistence/disk-tier.js';
import { HeldGenerations } from '../../worker/held-generations.js';
import type { Generation, GenerationHandlers } from '../../worker/generation.js';
import { checkModelFile, modelPathUnder, parseAdminBody } from '../../worker/api/ops/admin.js';
import { cacheDirOf } from '../../shared/model-cache-dir.js';
import type { ErrorPayload } from '../../shared/errors.js';
import type { GenerateMessage } from '../../shared/protocol/messages.js';
import { FakeDisk } from '../helpers/fake-disk.js';

const settings = (): EngineSettings => ({
  contextSize: 4096,
  sequenceSize: 4096,
  maxSequences: 4,
  batchTokens: 256,
  maxBatchTokens: 512,
  blockSize: 16,
  maxQueued: 64,
  maxQueuedTokens: 16384,
  maxQueuedPerAgent: 4,
  defaultMaxTokens: 2048,
  ramBudgetBytes: 0,
});

t.test('limits: applied to the settings and the queue, bounded by n_batch, unchanged on refusal', async (t) => {
  const engine = settings();
  const queues: Partial<QueueLimits>[] = [];
  const admission = { setLimits: (limits: Partial<QueueLimits>) => void queues.push(limits) };
  t.same(applyLimits({}, engine, admission), { batchTokens: 256, maxBatchTokens: 512, maxQueued: 64, maxQueuedTokens: 16384 }, 'no field: a read');
  t.same(applyLimits({ batchTokens: 512, maxQueued: 0 }, engine, admission), { batchTokens: 512, maxBatchTokens: 512, maxQueued: 0, maxQueuedTokens: 16384 });
  t.equal(engine.batchTokens, 512, 'the scheduler reads it at the next step');
  t.same(queues.at(-1), { maxQueued: 0, maxQueuedTokens: 16384 });
  t.throws(() => applyLimits({ batchTokens: 513, maxQueued: 5 }, engine, admission), { code: 'ERR_BAD_REQUEST', param: 'batch_tokens', message: /at most 512/ });
  t.same([engine.batchTokens, engine.maxQueued], [512, 0], 'a refused change changes nothing');
});

function tiersWithAgents(): { sources: (busy: string[]) => AgentSources; tiers: AgentTiers; disk: FakeDisk; released: number[] } {
  const released: number[] = [];
  const context = {
    seqRemove: () => true,
    stateSeqGet: (seq: number) => Promise.resolve(new Uint8Array(10 * (seq + 1))),
    stateSeqSize: (seq: number) => 10 * (seq + 1),
  } as unknown as Context;
  const disk = new FakeDisk();
  const tiers = new AgentTiers(context, { pool: new BlockPool(64, 16), releaseSequence: (seq) => void released.push(seq) }, 10_000, disk as unknown as DiskTier, () => undefined);
  const none = new Float32Array(0);
  tiers.park('hot-unwritten', 1, Int32Array.of(1, 2, 3), none, 0);
  tiers.ram.put('ram-only', Int32Array.of(1, 2), new Uint8Array(20), none);
  disk.files.set('disk-only', { agentId: 'disk-only', bytes: 500, lastUsed: 1 });
  tiers.park('busy', 2, Int32Array.of(4), none, 0);
  disk.files.set('busy', { agentId: 'busy', bytes: 500, lastUsed: 1 });
  const sources = (busy: string[]): AgentSources => ({ tiers, context, active: [], isBusy: (id) => busy.includes(id), now: () => 9_000 });
  return { sources, tiers, disk, released };
}

t.test('clear every tier: idle agents leave all of them, busy ones are skipped and listed', async (t) => {
  const { sources, tiers, disk, released } = tiersWithAgents();
  const outcome = await clearIdleCaches(['hot', 'ram', 'disk'], sources(['busy']));
  t.same(outcome, { cleared: { hot: 1, ram: 1, disk: 1 }, skipped: ['busy'] });
  t.same(released, [1], "the idle agent's sequence is freed, the busy one's kept");
  t.same(disk.writes, [], 'nothing is written to a tier being cleared');
  t.same([...disk.files.keys()], ['busy']);
  t.same(await tiers.writeDue(Infinity), 1, "only the busy agent's turn is still to be written");
});

t.test('clear the fast tiers only: what the disk lacks is written first, files kept', async (t) => {
  const { sources, tiers, disk } = tiersWithAgents();
  const outcome = await clearIdleCaches(['hot', 'ram'], sources([]));
  t.same(outcome, { cleared: { hot: 2, ram: 1, disk: 0 }, skipped: [] });
  t.same(disk.writes, ['hot-unwritten', 'busy', 'ram-only'], 'unwritten hot turns and a RAM state with no file are written');
  t.same([...disk.files.keys()].sort(), ['busy', 'disk-only', 'hot-unwritten', 'ram-only']);
  t.equal(tiers.hot.size + tiers.ram.size, 0);
  const diskOnly = await clearIdleCaches(['disk'], sources([]));
  t.same(diskOnly.cleared, { hot: 0, ram: 0, disk: 4 });
});

const generate = (requestId: string): GenerateMessage => ({
  type: 'generate',
  requestId,
  agentId: 'a',
  input: { kind: 'text', prompt: 'hi' },
  sampling: { temperature: 0, topP: 1, topK: 0, minP: 0, repeatPenalty: 1, frequencyPenalty: 0, presencePenalty: 0 },
  stop: [],
});

function recorder(failures: Map<string, ErrorPayload>, id: string): GenerationHandlers {
  const ignore = (): void => undefined;
  return { onStarted: ignore, onTokens: ignore, onDone: ignore, onFailed: (error) => void failures.set(id, error) };
}

t.test('held generations: bounded by the queue limit, sent on if their model still serves, else 404', async (t) => {
  const held = new HeldGenerations();
  const failures = new Map<string, ErrorPayload>();
  const aborted: string[] = [];
  const started: string[] = [];
  const start = (message: GenerateMessage): Generation => {
    started.push(message.requestId);
    return { requestId: message.requestId, abort: () => void aborted.push(message.requestId) };
  };
  const same = held.hold(generate('same'), recorder(failures, 'same'), 'tiny', 2);
  held.hold(generate('gone'), recorder(failures, 'gone'), 'tiny', 2);
  held.hold(generate('over'), recorder(failures, 'over'), 'tiny', 2);
  await Promise.resolve();
  t.match(failures.get('over'), { code: 'ERR_QUEUE_FULL', retryAfter: 1 }, 'beyond the limit: 429 at once');
  const cancelled = new HeldGenerations();
  cancelled.hold(generate('cancelled'), recorder(failures, 'cancelled'), 'tiny', 2).abort();
  cancelled.release('tiny', start);
  t.same(started, [], 'an aborted request is never started');

  held.release('tiny', start);
  t.same(started, ['same', 'gone']);
  same.abort();
  t.same(aborted, ['same'], 'an abort after the release reaches the started generation');

  const replaced = new HeldGenerations();
  replaced.hold(generate('stale'), recorder(failures, 'stale'), 'tiny', 2);
  replaced.release('tiny-b', start);
  t.match(failures.get('stale'), { code: 'ERR_MODEL_NOT_FOUND', param: 'model', message: /tiny was replaced by tiny-b/ });
  t.same(started, ['same', 'gone']);
});

t.test('admin bodies: unknown fields and bad values are 400s naming the field', async (t) => {
  const schema = z.strictObject({ max_queued: z.number().int().min(0).optional(), tiers: z.array(z.enum(['hot'])).optional() });
  t.same(parseAdminBody(schema, { max_queued: 3 }), { max_queued: 3 });
  t.throws(() => parseAdminBody(schema, { max_queue: 3 }), { code: 'ERR_BAD_REQUEST', param: 'max_queue', message: /not a field/ });
  t.throws(() => parseAdminBody(schema, { max_queued: -1 }), { code: 'ERR_BAD_REQUEST', param: 'max_queued' });
  t.throws(() => parseAdminBody(schema, { tiers: ['warm'] }), { code: 'ERR_BAD_REQUEST', param: 'tiers.0' });
  t.throws(() => parseAdminBody(schema, [1]), { code: 'ERR_BAD_REQUEST', message: /must be a JSON object/ });
});

t.test('model files: absolute, present, regular, GGUF', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'semantic-admin-unit-'));
  const good = join(dir, 'ok.gguf');
  writeFileSync(good, Buffer.concat([Buffer.from('GGUF'), Buffer.alloc(16)]));
  const bad = join(dir, 'bad.gguf');
  writeFileSync(bad, 'GGU');
  await t.resolves(checkModelFile(good));
  await t.rejects(checkModelFile(bad), { param: 'path', message: /not a GGUF file/ });
  await t.rejects(checkModelFile(join(dir, 'none.gguf')), { param: 'path', message: /no readable file/ });
  await t.rejects(checkModelFile(dir), { param: 'path', message: /not a regular file/ });
  await t.rejects(checkModelFile('ok.gguf'), { param: 'path', message: /absolute path/ });
});

t.test('swaps load only under the models dir: as written, `..` resolved, and through links', async (t) => {
  const top = realpathSync(mkdtempSync(join(tmpdir(), 'semantic-models-dir-')));
  const models = join(top, 'models');
  mkdirSync(join(models, 'sub'), { recursive: true });
  const gguf = Buffer.concat([Buffer.from('GGUF'), Buffer.alloc(16)]);
  for (const file of [join(models, 'a.gguf'), join(models, 'sub', 'b.gguf'), join(top, 'outside.gguf'), join(top, '..evil.gguf')]) writeFileSync(file, gguf);
  symlinkSync(join(models, 'a.gguf'), join(models, 'alias.gguf'));
  symlinkSync(join(top, 'outside.gguf'), join(models, 'escape.gguf'));
  symlinkSync(top, join(models, 'up'));
  symlinkSync(models, join(top, 'models-link'));
  writeFileSync(join(models, '..dots.gguf'), gguf);

  t.equal(await modelPathUnder(join(models, 'a.gguf'), models), join(models, 'a.gguf'));
  t.equal(await modelPathUnder(join(models, 'sub', 'b.gguf'), models), join(models, 'sub', 'b.gguf'), 'subfolders too');
  t.equal(await modelPathUnder(join(models, 'sub', '..', 'a.gguf'), models), join(models, 'a.gguf'), '`..` that stays inside');
  t.equal(await modelPathUnder(join(models, 'alias.gguf'), models), join(models, 'a.gguf'), 'a link inside to a file inside: the real path is loaded');
  t.equal(await modelPathUnder(join(models, '..dots.gguf'), models), join(models, '..dots.gguf'), 'a name that starts with two dots is not `..`');
  t.equal(await modelPathUnder(join(models, 'a.gguf'), join(top, 'models-link')), join(models, 'a.gguf'), 'a models dir that is itself a link: its real folder counts');

  const forbidden = { code: 'ERR_MODEL_PATH_FORBIDDEN', param: 'path' };
  await t.rejects(modelPathUnder(join(top, 'outside.gguf'), models), { ...forbidden, message: /is outside the models dir/ }, 'a file elsewhere');
  await t.rejects(modelPathUnder(join(models, '..', 'outside.gguf'), models), forbidden, 'out through `..`');
  await t.rejects(modelPathUnder(join(models, '..', '..evil.gguf'), models), forbidden, 'out through `..` to a name starting with two dots');
  await t.rejects(modelPathUnder('/etc/passwd', models), forbidden);
  await t.rejects(modelPathUnder(join(top, 'nowhere.gguf'), models), forbidden, 'a missing file outside: refused before it is looked for');
  await t.rejects(modelPathUnder(join(models, 'escape.gguf'), models), { ...forbidden, message: /once its links are resolved/ }, 'a link inside to a file outside');
  await t.rejects(
    modelPathUnder(join(models, 'up', 'outside.gguf'), models),
    { ...forbidden, message: /once its links are resolved/ },
    'a linked folder inside that leads outside',
  );
  await t.rejects(
    modelPathUnder(join(models, 'none.gguf'), models),
    { code: 'ERR_BAD_REQUEST', param: 'path', message: /no readable file/ },
    'inside but missing: the 400 as before',
  );
  await t.rejects(modelPathUnder('models/a.gguf', models), { code: 'ERR_BAD_REQUEST', param: 'path', message: /absolute path/ });
  await t.rejects(modelPathUnder(join(top, 'gone', 'a.gguf'), join(top, 'gone')), { ...forbidden, message: /does not exist/ }, 'a models dir that is not there');
});

t.test("cache files: the start model keeps the dir's top, every other model its own folder", async (t) => {
  t.equal(cacheDirOf('/cache', 'aaaa', 'aaaa'), '/cache');
  t.equal(cacheDirOf('/cache', 'bbbb', 'aaaa'), join('/cache', 'models', 'bbbb'));
});
