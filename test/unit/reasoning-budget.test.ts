// A reasoning budget in the engine's step loop, on the fake addon (one token per character, the token
// generated at position p is tokenAt(p)): once the budget's tokens were generated inside the think
// block the prompt opened, the engine feeds `\n</think>\n\n` in place of the next samples, then the
// model's own samples follow; usage counts the reasoning tokens; the agent's cells hold what was fed.
import t from 'tap';
import { Harness, generate } from '../helpers/engine-harness.js';
import type { DoneMessage } from '../../shared/protocol/messages.js';

const prompt = 'Q<think>\n'; // 9 tokens: a raw prompt that opened the block, so the output starts inside it
const close = '\n</think>\n\n'; // 11 tokens

async function run(h: Harness, id: string, extra: Parameters<typeof generate>[4], maxTokens = 20): Promise<DoneMessage> {
  const done = await h.run(generate(id, `agent-${id}`, prompt, maxTokens, extra));
  if (done.type !== 'done') throw new Error(`expected done, got ${done.type}`);
  return done;
}

t.test('a budget of 5: five sampled tokens, the close fed in place of the next samples, then the answer', async (t) => {
  const h = new Harness();
  const done = await run(h, 'a', { reasoning: { enabled: true, budgetTokens: 5 } });
  // Samples are tokenAt(9 + i): j k l m n, then o..y replaced by the close, then z a b c.
  t.equal(h.textOf('a'), `jklmn${close}zabc`);
  t.same(done.usage, { promptTokens: 9, completionTokens: 20, cachedTokens: 0, reasoningTokens: 14 }, '5 + the 9 tokens of "\\n</think>" are reasoning');
  t.equal(String.fromCharCode(...h.context.tokensOf(0)), `${prompt}jklmn${close}zab`, 'the cells hold the close as fed (the last sample is never decoded)');
  t.same(h.steps.slice(5, 8), [['0:n!@13'], ['0:\n!@14'], ['0:<!@15']], 'each forced token is decoded like a sampled one');
});

t.test('thinking off on a prompt that opened the block anyway: closed at once (a budget of 0)', async (t) => {
  const h = new Harness();
  const done = await run(h, 'b', { reasoning: { enabled: false } }, 14);
  t.equal(h.textOf('b'), `${close}uvw`);
  t.equal(done.usage.reasoningTokens, 9);
});

t.test('no budget: the model reasons until max tokens; no reasoning request: the same', async (t) => {
  const h = new Harness();
  const bounded = await run(h, 'c', { reasoning: { enabled: true } }, 6);
  t.equal(h.textOf('c'), 'jklmno');
  t.equal(bounded.usage.reasoningTokens, 6);
  const plain = await run(h, 'd', {}, 6);
  t.equal(h.textOf('d'), 'jklmno');
  t.equal(plain.usage.reasoningTokens, 6, 'reasoning is counted whenever the output starts inside a block');
});

t.test('a prompt that opened no block is not steered and reports no reasoning tokens', async (t) => {
  const h = new Harness();
  const done = await h.run(generate('e', 'agent-e', 'hello', 4, { reasoning: { enabled: true, budgetTokens: 0 } }));
  t.equal(h.textOf('e'), 'fghi');
  t.same(done.type === 'done' && done.usage, { promptTokens: 5, completionTokens: 4, cachedTokens: 0 });
});

t.test('a request with a grammar is never steered: its sampler has accepted what it sampled', async (t) => {
  const h = new Harness();
  const request = generate('f', 'agent-f', prompt, 8, { reasoning: { enabled: true, budgetTokens: 2 } });
  request.sampling.grammar = 'root ::= [a-z]*';
  await h.run(request);
  t.equal(h.textOf('f'), 'jklmnopq');
});
