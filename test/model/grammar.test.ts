// Grammar-constrained sampling with the real addon and the tiny random qwen2 model: llama.cpp accepts
// the grammars our JSON Schema converter writes, the model's output follows them through both
// sampling paths (after a decode, and from a saved logits row), and a complete grammar ends the
// generation by itself. The random model writes nonsense unconstrained, so every shape asserted here
// comes from the grammar.
import t from 'tap';
import { loadAddon, type Context, type SamplerOptions } from '../../worker/engine/addon.js';
import { jsonObjectGrammar, jsonSchemaGrammar, schemaRules, grammarOf } from '../../worker/tools/json-grammar.js';
import { tinyModelPath } from '../helpers/model.js';
import { RequestInput } from '../../worker/engine/request-input.js';
import { BadRequestError } from '../../shared/errors.js';
import type { GenerateMessage } from '../../shared/protocol/messages.js';

const addon = loadAddon();
const model = await addon.loadModel(await tinyModelPath());
const ctx: Context = await addon.createContext(model, { nCtx: 1024, nSeqMax: 2, nBatch: 256, threads: 2 });
const prompt = model.tokenize('<|im_start|>user\nWhat is the weather?<|im_end|>\n<|im_start|>assistant\n', { parseSpecial: true });
/** Every generation here is bounded; the tests assert it ended on an end token well before. */
const CAP = 200;

interface Generation {
  text: string;
  tokens: number;
  endedByItself: boolean;
}

function single(token: number, position: number) {
  return { tokens: Int32Array.of(token), positions: Int32Array.of(position), seqIds: Int32Array.of(0), logits: Uint8Array.of(1) };
}

/** The prompt decoded into sequence 0 (cleared first); resolves to the logits row after it. */
async function decodePrompt(): Promise<Float32Array> {
  ctx.seqRemove(0);
  const logits = new Uint8Array(prompt.length);
  logits[prompt.length - 1] = 1;
  const positions = Int32Array.from(prompt, (_, i) => i);
  await ctx.decode({ tokens: prompt, positions, seqIds: new Int32Array(prompt.length), logits });
  return ctx.logitsAt(prompt.length - 1);
}

/**
 * Generates from the prompt under `options` until an end token or CAP tokens. The first token is
 * sampled from the saved logits row (`sampleLogits`), every later one by decode's samples.
 */
async function generate(options: SamplerOptions, acceptPrompt = true): Promise<Generation> {
  const sampler = new addon.Sampler(model, options);
  if (acceptPrompt) sampler.accept(prompt);
  let next = sampler.sampleLogits(await decodePrompt());
  const out: number[] = [];
  while (!model.isEog(next) && out.length < CAP) {
    out.push(next);
    [next] = (await ctx.decode(single(next, prompt.length + out.length - 1), [{ index: 0, sampler }])) as unknown as [number];
  }
  sampler.dispose();
  return { text: model.detokenize(Int32Array.from(out)), tokens: out.length, endedByItself: model.isEog(next) };
}

t.teardown(() => {
  ctx.dispose();
});

t.test('unconstrained, the random model does not write JSON within the cap', async (t) => {
  const free = await generate({ temperature: 0 });
  t.throws(() => JSON.parse(free.text) as unknown, 'so the grammar tests below prove something');
});

t.test('json_object grammar: greedy output is a JSON object and ends by itself', async (t) => {
  const out = await generate({ temperature: 0, grammar: jsonObjectGrammar() });
  t.ok(out.endedByItself, `ended on an end token after ${out.tokens} tokens`);
  const parsed = JSON.parse(out.text) as unknown;
  t.equal(typeof parsed, 'object');
  t.notOk(Array.isArray(parsed) || parsed === null, `an object: ${out.text}`);
});

t.test('a JSON schema: required properties, enum values and integers are followed', async (t) => {
  const schema = {
    type: 'object',
    properties: { city: { enum: ['Paris', 'London'] }, days: { type: 'integer' } },
    required: ['city', 'days'],
  };
  const out = await generate({ temperature: 0, grammar: jsonSchemaGrammar(schema) });
  t.ok(out.endedByItself, `ended on an end token after ${out.tokens} tokens`);
  const parsed = JSON.parse(out.text) as { city: unknown; days: unknown };
  t.same(Object.keys(parsed), ['city', 'days']);
  t.ok(parsed.city === 'Paris' || parsed.city === 'London', `city ${String(parsed.city)}`);
  t.ok(Number.isInteger(parsed.days), `days ${String(parsed.days)}`);
});

t.test('literal text around an embedded schema is written exactly', async (t) => {
  const args = schemaRules({ type: 'object', properties: { city: { type: 'string', maxLength: 12 } }, required: ['city'] }, 'args');
  const grammar = grammarOf(`"<tool_call>\\n{\\"name\\": \\"get_weather\\", \\"arguments\\": " ${args.root} "}\\n</tool_call>"`, args.rules);
  const out = await generate({ temperature: 0, grammar });
  t.ok(out.endedByItself, `ended on an end token after ${out.tokens} tokens`);
  const match = /^<tool_call>\n(.*)\n<\/tool_call>$/s.exec(out.text);
  t.ok(match, `wrapped in the literal tags: ${JSON.stringify(out.text)}`);
  const call = JSON.parse(match?.[1] ?? '') as { name: string; arguments: { city: string } };
  t.equal(call.name, 'get_weather');
  t.same(Object.keys(call.arguments), ['city']);
  t.ok([...call.arguments.city].length <= 12, 'maxLength counts characters (code points)');
});

t.test('sampleLogits on a saved row honours the grammar, and matches sampling after a decode', async (t) => {
  const row = await decodePrompt();
  const free = new addon.Sampler(model, { temperature: 0 });
  const freeToken = free.sampleLogits(row);
  free.dispose();
  const yesNo = new addon.Sampler(model, { temperature: 0, grammar: 'root ::= "yes" | "no"' });
  const token = yesNo.sampleLogits(row);
  const piece = model.detokenize(Int32Array.of(token));
  t.ok(piece.length > 0 && ('yes'.startsWith(piece) || 'no'.startsWith(piece)), `first piece ${JSON.stringify(piece)}`);
  t.not(token, freeToken, 'the unconstrained choice was something else');
  yesNo.dispose();

  const viaDecode = new addon.Sampler(model, { temperature: 0, grammar: 'root ::= "yes" | "no"' });
  ctx.seqRemove(0);
  const logits = new Uint8Array(prompt.length);
  logits[prompt.length - 1] = 1;
  const positions = Int32Array.from(prompt, (_, i) => i);
  const [decoded] = await ctx.decode({ tokens: prompt, positions, seqIds: new Int32Array(prompt.length), logits }, [{ index: prompt.length - 1, sampler: viaDecode }]);
  t.equal(decoded, token, 'both sampling paths pick the same token');
  viaDecode.dispose();
});

t.test('a complete grammar leaves only end tokens: the generation ends right after the text', async (t) => {
  const out = await generate({ temperature: 0, grammar: 'root ::= "The answer is " [0-9] "."' });
  t.ok(out.endedByItself);
  t.match(out.text, /^The answer is [0-9]\.$/);
});

t.test('prompt tokens fed to the penalties do not reach the grammar; penalties and random draws still apply', async (t) => {
  const grammar = jsonSchemaGrammar({ type: 'object', properties: { ok: { type: 'boolean' } }, required: ['ok'] });
  const penalised = await generate({ temperature: 0, repeatPenalty: 1.3, grammar });
  t.ok(penalised.endedByItself);
  t.same(Object.keys(JSON.parse(penalised.text) as object), ['ok']);
  for (const seed of [1, 2, 3]) {
    const drawn = await generate({ temperature: 1, seed, grammar });
    t.ok(drawn.endedByItself, `seed ${seed} ended after ${drawn.tokens} tokens`);
    t.equal(typeof (JSON.parse(drawn.text) as { ok: unknown }).ok, 'boolean', `seed ${seed}: ${drawn.text}`);
  }
  const withoutPrompt = await generate({ temperature: 0, repeatPenalty: 1.3, grammar }, false);
  t.ok(withoutPrompt.endedByItself);
});

t.test('reset starts the grammar over', async (t) => {
  const sampler = new addon.Sampler(model, { temperature: 0, grammar: 'root ::= "ab"' });
  const row = await decodePrompt();
  const first = sampler.sampleLogits(row);
  sampler.reset();
  t.equal(sampler.sampleLogits(row), first, 'the same first token again, not what follows it');
  sampler.dispose();
});

t.test('grammars llama.cpp cannot parse throw a coded JS error, never crash', async (t) => {
  const bad = ['root ::= [a-', 'root ::= undefined-rule', 'root ::= "unterminated', 'not a grammar', 'start ::= "x"'];
  for (const grammar of bad) {
    t.throws(() => new addon.Sampler(model, { temperature: 0, grammar }), { code: 'ERR_GRAMMAR' }, JSON.stringify(grammar));
  }
  t.throws(() => new addon.Sampler(model, { grammar: 42 as unknown as string }), TypeError);
  const ok = new addon.Sampler(model, { grammar: 'root ::= "x"' });
  ok.dispose();
});

t.test('RequestInput refuses a request whose grammar llama.cpp rejects with a 400 before admission', async (t) => {
  const input = new RequestInput(addon, model, 512, 64);
  const request = (grammar: string): GenerateMessage => ({
    type: 'generate',
    requestId: 'r1',
    agentId: 'a1',
    stop: [],
    input: { kind: 'text', prompt: 'Weather:' },
    sampling: { temperature: 0, topP: 1, topK: 0, minP: 0, repeatPenalty: 1, frequencyPenalty: 0, presencePenalty: 0, grammar },
  });
  const error = t.throws(() => input.tokens(request('root ::= missing'))) as unknown;
  t.ok(error instanceof BadRequestError);
  t.match(error, { message: /grammar derived from this request is invalid/ });
  t.equal((error as BadRequestError).param, undefined, 'no request parameter is to blame');
  const good = request(jsonObjectGrammar());
  t.equal(input.tokens(good).maxTokens, 64);
  const sampler = input.sampler(good, input.tokens(good).prompt);
  t.ok(model.isEog(sampler.sampleLogits(await decodePrompt())) === false);
  sampler.dispose();
});
