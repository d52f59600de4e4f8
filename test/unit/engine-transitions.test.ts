// Every way a request or the engine ends, on the fake addon: abort (waiting behind its agent's turn,
// queued for cells, running, twice), drain and its cut, death, a decode failing for one sequence or
// for want of KV cells, and a returning agent restored from the RAM tier (restore.ts), or not.
import t from 'tap';
import { Harness, generate } from '../helpers/engine-harness.js';
import { FakeDisk } from '../helpers/fake-disk.js';

t.test('abort: a turn waiting behind its agent ends at once; aborting twice posts nothing more', async (t) => {
  const h = new Harness();
  h.engine.submit(generate('a1', 'agent-a', 'hello', 3));
  h.engine.submit(generate('a2', 'agent-a', 'hello again', 3));
  h.engine.abort('a2');
  t.same(h.lines, ['done a2 abort 0/0/0'], 'before any step: nothing was tokenized');
  h.engine.abort('a2');
  await h.ended('a1');
  t.same(h.lines, ['done a2 abort 0/0/0', 'started a1 miss 0', 'tokens a1 "f"', 'tokens a1 "g"', 'tokens a1 "h"', 'done a1 length 5/3/0']);
  h.engine.abort('a1');
  h.engine.abort('nobody');
  t.equal(h.posted.length, 6, 'aborting a finished or unknown request does nothing');
});

t.test('abort: a request queued for a sequence leaves the queue, and the queue moves on', async (t) => {
  const h = new Harness({ maxSequences: 1 });
  h.engine.submit(generate('a', 'agent-a', 'hello', 3));
  h.engine.submit(generate('b', 'agent-b', 'world', 3));
  h.engine.submit(generate('c', 'agent-c', 'again', 1));
  await h.waitFor((m) => m.type === 'tokens' && m.requestId === 'a');
  h.engine.abort('b');
  t.same(h.linesOf('b'), ['done b abort 5/0/0'], 'its prompt was tokenized: 5 tokens, none generated');
  await h.ended('c');
  t.same(h.lines, [
    'started a miss 0',
    'tokens a "f"',
    'done b abort 5/0/0',
    'tokens a "g"',
    'tokens a "h"',
    'done a length 5/3/0',
    'started c miss 0',
    'tokens c "f"',
    'done c length 5/1/0',
  ]);
  t.same(
    h.steps.map((s) => s[0]),
    ['0:hello!@0', '0:f!@5', '0:g!@6', '0:again!@0'],
    "c takes a's sequence once a is done (a's cells leave for it)",
  );
});

t.test('abort: a running request ends at the next boundary, keeping what its cells hold for the next turn', async (t) => {
  const h = new Harness();
  h.engine.submit(generate('a', 'agent-a', 'hello', 50));
  await h.waitFor((m) => m.type === 'tokens' && m.requestId === 'a');
  h.engine.abort('a');
  h.engine.abort('a');
  await h.ended('a');
  t.same(h.linesOf('a'), ['started a miss 0', 'tokens a "f"', 'done a abort 5/1/0'], 'one done, counting the token streamed');
  t.same(h.steps, [['0:hello!@0']], 'aborted between steps: no second decode');
  t.equal(String.fromCharCode(...h.context.tokensOf(0)), 'hello', 'the decoded tokens stay cached');
  await h.run(generate('a2', 'agent-a', 'hello', 1));
  t.same(h.linesOf('a2')[0], 'started a2 hot 4', 'the next turn reuses them, but an aborted turn keeps no logits: its last prompt token is decoded again');
  t.same(h.steps.at(-1), ['0:o!@4']);
  t.equal(h.addon.liveSamplers, 0);
});

t.test('drain: waiting requests fail ERR_DRAINING at once, running ones finish, idle turns are written, later ones are refused', async (t) => {
  const disk = new FakeDisk();
  const h = new Harness({ maxSequences: 1 }, { disk });
  h.engine.submit(generate('a', 'agent-a', 'hello', 3));
  h.engine.submit(generate('a2', 'agent-a', 'hello again', 3));
  h.engine.submit(generate('b', 'agent-b', 'world', 3));
  await h.waitFor((m) => m.type === 'started');
  const drained = h.engine.drain();
  t.equal(h.engine.drain(), drained, 'idempotent');
  t.same(h.lines, ['started a miss 0', 'failed a2 ERR_DRAINING', 'failed b ERR_DRAINING'], 'the turn behind a and the request queued for a sequence');
  t.same(await drained, { persisted: 1, cut: 0 });
  t.same(h.linesOf('a'), ['started a miss 0', 'tokens a "f"', 'tokens a "g"', 'tokens a "h"', 'done a length 5/3/0']);
  t.same(disk.writes, ['agent-a'], "a's turn is written before the drain resolves");
  h.engine.submit(generate('c', 'agent-c', 'late', 3));
  t.same(h.linesOf('c'), ['failed c ERR_DRAINING'], 'refused at once');
});

t.test('cut: past the drain deadline running requests fail ERR_DRAINING, keep their cells, and the drain completes', async (t) => {
  const disk = new FakeDisk();
  const h = new Harness({}, { disk });
  h.engine.submit(generate('a', 'agent-a', 'hello', 50));
  h.engine.submit(generate('b', 'agent-b', 'world', 50));
  await h.waitFor((m) => m.type === 'tokens' && m.requestId === 'b');
  const drained = h.engine.drain();
  h.engine.cut();
  h.engine.cut();
  t.same(await drained, { persisted: 2, cut: 2 }, 'each counted once; both turns written');
  t.same(h.lines, [
    'started a miss 0',
    'started b miss 0',
    'tokens a "f"',
    'tokens b "f"',
    'failed a ERR_DRAINING',
    'failed b ERR_DRAINING',
    'persisted agent-a',
    'persisted agent-b',
  ]);
  t.match(h.posted[4], { error: { message: 'the server drain deadline passed before this request finished' } });
  t.same(h.steps, [['0:hello!@0', '1:world!@0']], 'cut between steps: no second decode');
  t.same([h.context.tokensOf(0).length, h.context.tokensOf(1).length], [5, 5], 'their cells keep what was decoded');
  t.same(disk.writes, ['agent-a', 'agent-b']);
});

t.test('die: a decode that fails whatever it carries kills the engine; every request is answered, and later ones too', async (t) => {
  const h = new Harness({ maxSequences: 1 });
  h.context.failDecode({ code: 'ERR_DECODE_FATAL', times: Infinity });
  h.engine.submit(generate('a', 'agent-a', 'hello', 3));
  h.engine.submit(generate('a2', 'agent-a', 'hello again', 3));
  h.engine.submit(generate('b', 'agent-b', 'world', 3));
  await h.waitFor((m) => m.type === 'engine_dead');
  t.same(h.lines, ['started a miss 0', 'failed a ERR_ENGINE_DEAD', 'failed a2 ERR_ENGINE_DEAD', 'failed b ERR_ENGINE_DEAD', 'engine_dead ERR_ENGINE_DEAD']);
  t.same(
    h.steps,
    [
      ['0:hello!@0', 'FAILED ERR_DECODE_FATAL'],
      ['0:hello!@0', 'FAILED ERR_DECODE_FATAL'],
    ],
    'the step, then the sequence alone',
  );
  t.match(h.posted.at(-1), { error: { message: 'decode failed: llama_decode failed (ERR_DECODE_FATAL)' } });
  h.engine.submit(generate('c', 'agent-c', 'late', 3));
  t.same(h.linesOf('c'), ['failed c ERR_ENGINE_DEAD']);
  t.same(await h.engine.drain(), { persisted: 0, cut: 0 }, 'a drain of a dead engine resolves at once');
});

t.test("a decode failing for one sequence fails that request alone; the others' step is decoded again without it", async (t) => {
  const h = new Harness();
  h.context.failDecode({ code: 'ERR_DECODE_FATAL', times: Infinity, when: (batch) => batch.seqIds.includes(1) });
  h.engine.submit(generate('a', 'agent-a', 'hello', 2));
  h.engine.submit(generate('b', 'agent-b', 'world', 2));
  await Promise.all([h.ended('a'), h.ended('b')]);
  t.same(h.steps, [
    ['0:hello!@0', '1:world!@0', 'FAILED ERR_DECODE_FATAL'],
    ['0:hello!@0'], // each sequence alone, rolled back after
    ['1:world!@0', 'FAILED ERR_DECODE_FATAL'],
    ['0:hello!@0'], // the step again without b
    ['0:f!@5'],
  ]);
  t.same(h.lines, ['started a miss 0', 'started b miss 0', 'failed b ERR_INTERNAL', 'tokens a "f"', 'tokens a "g"', 'done a length 5/2/0']);
  t.equal(h.context.tokensOf(1).length, 0, "b's cells are gone");
});

t.test('no KV slot: prompts being prefilled give way with a 429; generating sequences retry and finish as if nothing happened', async (t) => {
  const h = new Harness();
  h.engine.submit(generate('a', 'agent-a', 'hello', 4));
  await h.waitFor((m) => m.type === 'tokens' && m.requestId === 'a');
  h.context.failDecode({ code: 'ERR_KV_NO_SLOT' });
  h.engine.submit(generate('b', 'agent-b', 'world', 2));
  await Promise.all([h.ended('a'), h.ended('b')]);
  t.same(h.linesOf('b'), ['started b miss 0', 'failed b ERR_POOL_EXHAUSTED']);
  t.match(
    h.posted.find((m) => m.type === 'failed'),
    { error: { retryAfter: 1 } },
  );
  t.same(h.linesOf('a'), ['started a miss 0', 'tokens a "f"', 'tokens a "g"', 'tokens a "h"', 'tokens a "i"', 'done a length 5/4/0']);
  t.same(h.steps, [['0:hello!@0'], ['0:f!@5', '1:world!@0', 'FAILED ERR_KV_NO_SLOT'], ['0:f!@5'], ['0:g!@6'], ['0:h!@7']], "a's token is decoded again in the next step");
});

t.test('restore: an agent spilled to the RAM tier to free a sequence gets its prefix back by import before its first prefill', async (t) => {
  const h = new Harness({ maxSequences: 1, ramBudgetBytes: 1_000_000 });
  await h.run(generate('a1', 'agent-a', 'hello', 3));
  await h.run(generate('b1', 'agent-b', 'world', 1));
  t.same(h.context.exports, [0], "a's idle cells were exported to free the one sequence for b");
  await h.run(generate('a2', 'agent-a', 'hellofgXY', 2));
  t.same(h.context.exports, [0, 0], "then b's, for a");
  t.same(h.context.imports, [0], "a's state imported");
  t.same(h.linesOf('a2'), ['started a2 ram 7', 'tokens a2 "j"', 'tokens a2 "k"', 'done a2 length 9/2/7']);
  t.same(h.steps.slice(-2), [['0:XY!@7'], ['0:j!@9']], 'only what the restored prefix lacks is prefilled');
});

t.test('restore: a state llama.cpp refuses makes the turn a miss, prefilled from scratch with the same output', async (t) => {
  const h = new Harness({ maxSequences: 1, ramBudgetBytes: 1_000_000 });
  await h.run(generate('a1', 'agent-a', 'hello', 3));
  await h.run(generate('b1', 'agent-b', 'world', 1));
  h.context.failImports = 1;
  await h.run(generate('a2', 'agent-a', 'hellofgXY', 2));
  t.same(h.linesOf('a2'), ['started a2 miss 0', 'tokens a2 "j"', 'tokens a2 "k"', 'done a2 length 9/2/0']);
  t.same(h.steps.slice(-2), [['0:hellofgXY!@0'], ['0:j!@9']]);
});

t.test("abort: a request aborted while its agent's state is imported ends at once, its cells kept", async (t) => {
  const h = new Harness({ maxSequences: 1, ramBudgetBytes: 1_000_000 });
  await h.run(generate('a1', 'agent-a', 'hello', 3));
  await h.run(generate('b1', 'agent-b', 'world', 1));
  h.context.whileInFlight = (call) => call === 'stateSeqSet' && h.engine.abort('a2');
  await h.run(generate('a2', 'agent-a', 'hellofgXY', 2));
  t.same(h.linesOf('a2'), ['started a2 ram 7', 'done a2 abort 9/0/7'], 'nothing left to decode: it is not left waiting for another request to wake the engine');
  t.same(h.steps.length, 4, 'no decode for it');
  t.equal(String.fromCharCode(...h.context.tokensOf(0)), 'hellofg', "the imported prefix stays as the agent's cache");
  h.context.whileInFlight = undefined;
  t.same(await h.engine.drain(), { persisted: 0, cut: 0 }, 'and the engine is idle: a drain resolves');
});

t.test('drain while the write-behind is exporting an agent: the drain waits for the step loop, then writes the rest (no ERR_BUSY)', async (t) => {
  const disk = new FakeDisk();
  const h = new Harness({}, { disk });
  h.engine.submit(generate('a', 'agent-a', 'hello', 2));
  h.engine.submit(generate('b', 'agent-b', 'world', 2));
  await Promise.all([h.ended('a'), h.ended('b')]);
  // The write-behind runs by itself once the turns are due (WRITE_DELAY_MS after they ended, in the
  // same step, so both at once): the drain arrives while its first export is in flight on the context,
  // as a SIGTERM can. Before the fix the drain's own export met that one: ERR_BUSY, the thread dead.
  const drained = await new Promise<Promise<{ persisted: number; cut: number }>>((resolve) => {
    h.context.whileInFlight = (call) => {
      if (call !== 'stateSeqGet') return;
      h.context.whileInFlight = undefined;
      resolve(h.engine.drain());
    };
  });
  t.same(await drained, { persisted: 0, cut: 0 }, 'the drain waited for the write-behind under way, which wrote both');
  t.same([...disk.writes].sort(), ['agent-a', 'agent-b'], 'both turns written, each once');
});
