// The native addon against the tiny generated qwen2 model: tokenizer, deterministic greedy decoding,
// per-sequence state export/import, and misuse that must raise JS errors instead of crashing.
import t from 'tap';
import { loadAddon, type Context, type Model, type Sampler } from '../../worker/engine/addon.js';
import { tinyModelPath } from '../helpers/model.js';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkCacheHeader, encodeCacheFile } from '../../worker/persistence/cache-file.js';

const addon = loadAddon();
const model = await addon.loadModel(await tinyModelPath());
const greedy = (): Sampler => new addon.Sampler(model, { temperature: 0 });

function single(token: number, position: number, seq: number) {
  return { tokens: Int32Array.of(token), positions: Int32Array.of(position), seqIds: Int32Array.of(seq), logits: Uint8Array.of(1) };
}

/** Feeds `tokens` to `seq` from `start`, then greedily generates `count` tokens. */
async function generate(ctx: Context, seq: number, tokens: Int32Array, start: number, count: number): Promise<number[]> {
  const sampler = greedy();
  const logits = new Uint8Array(tokens.length - start);
  logits[logits.length - 1] = 1;
  const positions = Int32Array.from({ length: tokens.length - start }, (_, i) => start + i);
  const batch = { tokens: tokens.slice(start), positions, seqIds: new Int32Array(positions.length).fill(seq), logits };
  let [next] = await ctx.decode(batch, [{ index: logits.length - 1, sampler }]);
  const out: number[] = [];
  for (let i = 0; i < count; i++) {
    out.push(next as number);
    [next] = await ctx.decode(single(next as number, tokens.length + i, seq), [{ index: 0, sampler }]);
  }
  sampler.dispose();
  return out;
}

async function newContext(m: Model, nSeqMax = 4): Promise<Context> {
  return addon.createContext(m, { nCtx: 1024, nSeqMax, nBatch: 256, threads: 2 });
}

const prompt = model.tokenize('<|im_start|>user\nTell me about llamas.<|im_end|>\n<|im_start|>assistant\n', { parseSpecial: true });

t.test('model info describes the generated qwen2 model', async (t) => {
  const info = model.info();
  t.equal(info.architecture, 'qwen2');
  t.ok(info.vocabSize >= 32000, `vocab ${info.vocabSize} >= 32000`);
  t.match(info.chatTemplate, /im_start/);
  t.equal(model.detokenize(Int32Array.of(info.eos), { special: true }).length > 0, true);
});

t.test('tokenize/detokenize round trip, ASCII and non-ASCII', async (t) => {
  for (const text of ['Hello world, this is a test.', 'héllo wörld — 日本語のテキスト 🚀🦙 Ελληνικά']) {
    const tokens = model.tokenize(text);
    t.ok(tokens.length > 0);
    t.equal(model.detokenize(tokens), text);
    const pieces = Buffer.concat([...tokens].map((tok) => model.tokenToPiece(tok)));
    t.equal(pieces.toString('utf8'), text, 'token pieces concatenate to the same bytes');
  }
  t.ok(prompt.includes(151644), 'special token text is parsed into <|im_start|> when asked');
  t.notOk(model.tokenize('<|im_start|>').includes(151644), 'and left as plain text otherwise');
});

t.test('greedy decoding is deterministic', async (t) => {
  const ctx = await newContext(model);
  const first = await generate(ctx, 0, prompt, 0, 32);
  ctx.seqRemove(0);
  const second = await generate(ctx, 1, prompt, 0, 32);
  t.equal(first.length, 32);
  t.same(second, first);
  ctx.dispose();
});

t.test('the persistent CPU threadpool changes no token; threadpoolPoll -1 attaches none', async (t) => {
  const pooled = await newContext(model);
  const bare = await addon.createContext(model, { nCtx: 1024, nSeqMax: 4, nBatch: 256, threads: 2, threadpoolPoll: -1 });
  t.equal(pooled.info().threadpool, true, 'attached by default');
  t.equal(bare.info().threadpool, false, 'threadpoolPoll -1 attaches none');
  t.same(await generate(pooled, 0, prompt, 0, 16), await generate(bare, 0, prompt, 0, 16));
  pooled.dispose();
  bare.dispose();
  await t.rejects(async () => addon.createContext(model, { nCtx: 1024, threadpoolPoll: 101 }), RangeError, 'polling level outside [0, 100]');
});

t.test('state round trip: another sequence and a fresh context continue identically', async (t) => {
  const ctx = await newContext(model);
  const head = prompt.slice(0, prompt.length - 1);
  const positions = Int32Array.from(head, (_, i) => i);
  await ctx.decode({ tokens: head, positions, seqIds: new Int32Array(head.length), logits: new Uint8Array(head.length) });
  t.equal(ctx.seqPosMax(0), head.length - 1);
  const state = await ctx.stateSeqGet(0);
  t.ok(state.byteLength > 0);
  t.equal(state.byteLength, ctx.stateSeqSize(0), 'export size matches the reported size');

  t.equal(await ctx.stateSeqSet(1, state), state.byteLength, 'import reads every byte');
  t.equal(ctx.seqPosMax(1), head.length - 1);
  const fresh = await newContext(model);
  await fresh.stateSeqSet(2, state);
  t.equal(fresh.seqPosMax(2), head.length - 1);

  const original = await generate(ctx, 0, prompt, head.length, 32);
  const copied = await generate(ctx, 1, prompt, head.length, 32);
  const restored = await generate(fresh, 2, prompt, head.length, 32);
  const cold = await generate(fresh, 3, prompt, 0, 32);
  t.same(copied, original, 'imported into another sequence');
  t.same(restored, original, 'imported into a fresh context');
  t.same(cold, original, 'equal to a cold prefill of the whole prompt');
  ctx.dispose();
  fresh.dispose();
});

t.test('state import from a cache file: checked in place, bad files refused with codes', async (t) => {
  const ctx = await newContext(model);
  const head = prompt.slice(0, prompt.length - 1);
  const positions = Int32Array.from(head, (_, i) => i);
  await ctx.decode({ tokens: head, positions, seqIds: new Int32Array(head.length), logits: new Uint8Array(head.length) });
  const state = await ctx.stateSeqGet(0);
  const meta = { agentId: 'a', model: 'm', kvType: 'f16', vTransposed: true };
  const bytes = Buffer.concat(encodeCacheFile({ ...meta, tokens: head, logits: new Float32Array(0), state: state.slice() }));
  const dir = mkdtempSync(join(tmpdir(), 'semantic-addon-'));
  const path = join(dir, 'a.safetensors');
  writeFileSync(path, bytes);
  const span = { path, ...checkCacheHeader(bytes, bytes.length, meta) };

  t.equal(await ctx.stateSeqSetFile(1, span), state.byteLength, 'imports every byte of the state');
  t.same(await generate(ctx, 1, prompt, head.length, 16), await generate(ctx, 0, prompt, head.length, 16), 'and continues as the original');
  const code = (promise: Promise<unknown>) =>
    promise.then(
      () => 'resolved',
      (error: { code?: string }) => error.code,
    );
  t.equal(await code(ctx.stateSeqSetFile(2, { ...span, crc32: (span.crc32 + 1) >>> 0 })), 'ERR_CACHE_FILE_CHECKSUM');
  t.equal(await code(ctx.stateSeqSetFile(2, { ...span, path: join(dir, 'missing') })), 'ERR_CACHE_FILE_UNREADABLE');
  writeFileSync(path, Buffer.concat([bytes, Buffer.of(0)]));
  t.equal(await code(ctx.stateSeqSetFile(2, span)), 'ERR_CACHE_FILE_CHANGED', 'a file that is no longer the size its header was read at');
  t.equal(ctx.seqPosMax(2), -1, 'nothing was imported from a bad file');
  t.throws(() => ctx.stateSeqSetFile(2, { ...span, stateBytes: span.fileBytes }), RangeError, 'a span outside the file');
  ctx.dispose();
});

t.test('logits saved after a decode give the token the decode sampled, greedy and seeded', async (t) => {
  const ctx = await newContext(model);
  const last = prompt.length - 1;
  const logits = new Uint8Array(prompt.length);
  logits[last] = 1;
  const batch = { tokens: prompt, positions: Int32Array.from(prompt, (_, i) => i), seqIds: new Int32Array(prompt.length), logits };
  for (const options of [{ temperature: 0 }, { temperature: 0.9, topK: 40, seed: 7, repeatPenalty: 1.1 }]) {
    const [sampler, again] = [new addon.Sampler(model, options), new addon.Sampler(model, options)];
    const [sampled] = await ctx.decode(batch, [{ index: last, sampler }]);
    const saved = ctx.logitsAt(last);
    t.equal(saved.length, model.info().vocabSize);
    t.equal(again.sampleLogits(saved), sampled, `the same token from the saved row (${JSON.stringify(options)})`);
    sampler.dispose();
    again.dispose();
    ctx.seqRemove(0);
  }
  const sampler = greedy();
  t.throws(() => sampler.sampleLogits(new Float32Array(3)), RangeError, 'a row of the wrong length');
  t.throws(() => ctx.logitsAt(-1), RangeError, 'an index outside the batch');
  sampler.dispose();
  ctx.dispose();
});

t.test('two sequences decoded in one batch match their single-sequence runs', async (t) => {
  const ctx = await newContext(model);
  const other = model.tokenize('Another agent with another prompt', {});
  const soloA = await generate(ctx, 0, prompt, 0, 8);
  const soloB = await generate(ctx, 1, other, 0, 8);
  ctx.clear();
  const a = greedy();
  const b = greedy();
  const both = Int32Array.from([...prompt, ...other]);
  const positions = Int32Array.from([...prompt.keys(), ...other.keys()]);
  const seqIds = Int32Array.from([...prompt].map(() => 2).concat([...other].map(() => 3)));
  const logits = new Uint8Array(both.length);
  logits[prompt.length - 1] = 1;
  logits[both.length - 1] = 1;
  let next = await ctx.decode({ tokens: both, positions, seqIds, logits }, [
    { index: prompt.length - 1, sampler: a },
    { index: both.length - 1, sampler: b },
  ]);
  const outA: number[] = [];
  const outB: number[] = [];
  for (let i = 0; i < 8; i++) {
    outA.push(next[0] as number);
    outB.push(next[1] as number);
    next = await ctx.decode(
      { tokens: Int32Array.from(next), positions: Int32Array.of(prompt.length + i, other.length + i), seqIds: Int32Array.of(2, 3), logits: Uint8Array.of(1, 1) },
      [
        { index: 0, sampler: a },
        { index: 1, sampler: b },
      ],
    );
  }
  t.same(outA, soloA);
  t.same(outB, soloB);
  ctx.dispose();
});

t.test('misuse raises JS errors with codes, never crashes', async (t) => {
  const ctx = await newContext(model, 2);
  const inFlight = ctx.decode(single(prompt[0] as number, 0, 0));
  t.throws(() => ctx.seqPosMax(0), { code: 'ERR_BUSY' }, 'sync call during a decode');
  await t.rejects(async () => ctx.decode(single(1, 0, 1)), { code: 'ERR_BUSY' }, 'second decode in flight');
  t.throws(() => model.dispose(), { code: 'ERR_BUSY' }, 'model with a live context');
  await inFlight;
  t.throws(() => ctx.seqRemove(5), RangeError, 'sequence id out of range');
  await t.rejects(async () => ctx.decode(single(-3, 0, 0)), RangeError, 'token outside the vocabulary');
  await t.rejects(async () => ctx.decode({ ...single(1, 0, 0), logits: Uint8Array.of(0) }, [{ index: 0, sampler: greedy() }]), RangeError);
  await t.rejects(ctx.stateSeqSet(1, Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8])), { code: 'ERR_STATE_IMPORT' }, 'garbage state');
  t.throws(() => new addon.Sampler(model, { topP: 2 }), RangeError);
  t.equal(ctx.seqPosMax(0), 0, 'context still usable after the errors');
  ctx.dispose();
  t.throws(() => ctx.seqPosMax(0), { code: 'ERR_DISPOSED' });
  await t.rejects(addon.loadModel('/nonexistent/model.gguf'), { code: 'ERR_MODEL_LOAD' });
});
