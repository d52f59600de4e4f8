// The engine's step loop on the fake addon (test/helpers/fake-addon.ts): the exact batch of every
// decode step, the order of the messages it posts, and how many prompt tokens a returning agent's
// cached prefix saves. The fake generates tokenAt(position) ('a'..'z' by position), so a prompt of n
// characters generates the letters from position n on, warm or cold.
import t from 'tap';
import { Harness, generate } from '../helpers/engine-harness.js';
import { EOS, expectedText, letterAt } from '../helpers/fake-addon.js';

t.test('one request: its prompt in one batch, then one token per step; started, each token, done', async (t) => {
  const h = new Harness();
  await h.run(generate('a', 'agent-a', 'hello', 3));
  t.same(h.steps, [['0:hello!@0'], ['0:f!@5'], ['0:g!@6']], 'the last sampled token (h) is never decoded');
  t.same(h.lines, ['started a miss 0', 'tokens a "f"', 'tokens a "g"', 'tokens a "h"', 'done a length 5/3/0']);
  t.equal(String.fromCharCode(...h.context.tokensOf(0)), 'hellofg', "the agent's cells stay in the context for its next turn");
  t.same(
    h.addon.samplers.map((s) => [s.accepted.length, s.sampled.length, s.disposed]),
    [[5, 3, true]],
    'one sampler: fed the prompt, sampled 3 tokens, disposed',
  );
  t.same(h.engine.admin.stats().steps, 3);
});

t.test('a long prompt is prefilled in chunks under the batch budget beside another; generating tokens go first', async (t) => {
  const h = new Harness({ batchTokens: 8 });
  h.engine.submit(generate('a', 'agent-a', 'abcdefghijkl', 3));
  h.engine.submit(generate('b', 'agent-b', 'vwxyz', 2));
  await Promise.all([h.ended('a'), h.ended('b')]);
  t.same(h.steps, [
    ['0:abcdefgh@0'], // a's first 8 prompt tokens fill the budget: b waits
    ['0:ijkl!@8', '1:vwxy@0'], // a's last 4 (logits after the last), b's first 4
    ['0:m!@12', '1:z!@4'], // a generates, b's last prompt token
    ['0:n!@13', '1:f!@5'], // both generate in one batch
  ]);
  t.same(h.lines, [
    'started a miss 0',
    'started b miss 0',
    'tokens a "m"',
    'tokens a "n"',
    'tokens b "f"',
    'tokens a "o"',
    'tokens b "g"',
    'done a length 12/3/0',
    'done b length 5/2/0',
  ]);
  const { steps, sampledTokens, multiSequenceSteps } = h.engine.admin.stats();
  t.same({ steps, sampledTokens, multiSequenceSteps }, { steps: 4, sampledTokens: 5, multiSequenceSteps: 3 });
});

t.test('a returning agent decodes only what its cached prefix lacks, and generates what a cold start does', async (t) => {
  const h = new Harness();
  await h.run(generate('a1', 'agent-a', 'abcdefghijkl', 3));
  const turnOne = h.steps.length;
  await h.run(generate('a2', 'agent-a', 'abcdefghijklmnoXY', 3));
  t.same(h.steps.slice(turnOne), [['0:oXY!@14'], ['0:r!@17'], ['0:s!@18']], "14 cached tokens (prompt + 2 decoded) reused: only 'oXY' is prefilled");
  t.same(h.linesOf('a2'), ['started a2 hot 14', 'tokens a2 "r"', 'tokens a2 "s"', 'tokens a2 "t"', 'done a2 length 17/3/14']);

  const cold = new Harness();
  await cold.run(generate('c', 'agent-c', 'abcdefghijklmnoXY', 3));
  t.same(cold.steps[0], ['0:abcdefghijklmnoXY!@0'], 'cold: the whole prompt is decoded');
  t.equal(h.textOf('a2'), cold.textOf('c'), 'the warm output equals the cold output token for token');
  t.equal(h.textOf('a2'), expectedText(17, 3));
});

t.test('a diverging prompt keeps only the common prefix; the cells past it are dropped', async (t) => {
  const h = new Harness();
  await h.run(generate('a1', 'agent-a', 'abcdefgh', 2));
  await h.run(generate('a2', 'agent-a', 'abcdZZ', 2));
  t.same(h.steps.slice(2), [['0:ZZ!@4'], ['0:g!@6']]);
  t.same(h.linesOf('a2'), ['started a2 hot 4', 'tokens a2 "g"', 'tokens a2 "h"', 'done a2 length 6/2/4']);
  t.equal(String.fromCharCode(...h.context.tokensOf(0)), 'abcdZZg');
});

t.test('the same prompt again samples its first token from the saved logits, with no decode at all', async (t) => {
  const h = new Harness();
  await h.run(generate('a1', 'agent-a', 'hello', 1));
  t.same(h.steps, [['0:hello!@0']]);
  await h.run(generate('a2', 'agent-a', 'hello', 1));
  t.same(h.steps, [['0:hello!@0']], 'no second decode');
  t.same(h.linesOf('a2'), ['started a2 hot 5', 'tokens a2 "f"', 'done a2 length 5/1/5']);
  await h.run(generate('a3', 'agent-a', 'hello', 2));
  t.same(h.steps.slice(1), [['0:f!@5']], 'its first token from the logits, the second from one decode');
  t.same(h.linesOf('a3'), ['started a3 hot 5', 'tokens a3 "f"', 'tokens a3 "g"', 'done a3 length 5/2/5']);
});

t.test('an end token ends a request with stop; a stop string ends it before the string', async (t) => {
  const h = new Harness({}, { tokenAt: (position) => (position === 7 ? EOS : letterAt(position)) });
  await h.run(generate('a', 'agent-a', 'hello', 10));
  t.same(h.linesOf('a'), ['started a miss 0', 'tokens a "f"', 'tokens a "g"', 'done a stop 5/2/0'], 'the end token is not counted');
  t.same(h.steps.length, 3);

  await h.run(generate('b', 'agent-b', 'abc', 10, { stop: ['ef'] }));
  t.same(h.linesOf('b'), ['started b miss 0', 'tokens b "d"', 'done b stop 3/3/0'], "'e' is held back until 'f' completes the stop string");
  t.match(h.posted.at(-1), { type: 'done', stopSequence: 'ef' });
});

t.test("agents of one sharing scope: a second agent joins the first one's cells and decodes only its own tokens", async (t) => {
  const h = new Harness();
  const prefix = 'abcdefghijklmnopqrstuvwxyzABCDEF'; // two whole blocks of 16
  await h.run(generate('a', 'agent-a', `${prefix}one`, 2, { shareScope: 'team' }));
  await h.run(generate('b', 'agent-b', `${prefix}two`, 2, { shareScope: 'team' }));
  t.same(h.steps.slice(0, 3), [[`0:${prefix}@0`], ['0:one!@32'], ['0:j!@35']], "a's 35 tokens over the 32-token budget: two steps");
  t.same(h.steps.slice(3), [['1:two!@32'], ['1:j!@35']], "b's 32 shared tokens are not decoded again");
  t.same(h.linesOf('b'), ['started b shared 32 from hot', 'tokens b "j"', 'tokens b "k"', 'done b length 35/2/32']);
  t.equal(h.context.usedCells, 36 + 4, "the prefix's cells are held once: a's 36 and b's own 4");
});

t.test('no sampler outlives its request, whatever the ending', async (t) => {
  const h = new Harness();
  await h.run(generate('a', 'agent-a', 'hello', 2));
  h.engine.submit(generate('b', 'agent-b', 'hello', 50));
  await h.waitFor((m) => m.type === 'tokens' && m.requestId === 'b');
  h.engine.abort('b');
  await h.ended('b');
  t.equal(h.addon.samplers.length, 2);
  t.equal(h.addon.liveSamplers, 0);
});
