// The engine client against a fake inference thread that speaks the real codec: frames reach the
// request they name, nothing is served before `ready`, and no request is left hanging when the thread
// dies (exit, engine_dead, a frame that breaks the protocol).
import t, { type Test } from 'tap';
import { pino } from 'pino';
import type { ErrorPayload } from '../../shared/errors.js';
import type { GenerateMessage } from '../../shared/protocol/messages.js';
import { EngineClient } from '../../worker/engine-client.js';
import type { CompletedMessage } from '../../worker/generation.js';
import type { InferenceOptions } from '../../shared/inference-options.js';
import { fakeInferenceOptions } from '../helpers/fake-inference-options.js';

const fakeThread = new URL('../fixtures/fake-inference-thread.mjs', import.meta.url);

const inference = (modelPath = 'fake://ready'): InferenceOptions => fakeInferenceOptions(modelPath);

function startClient(t: Test, modelPath?: string): EngineClient {
  const client = new EngineClient({ inference: inference(modelPath), logger: pino({ level: 'silent' }), threadUrl: fakeThread });
  t.teardown(() => client.close());
  return client;
}

function chat(requestId: string, content: string): GenerateMessage {
  const sampling = { temperature: 0, topP: 1, topK: 0, minP: 0, repeatPenalty: 1, frequencyPenalty: 0, presencePenalty: 0 };
  return { type: 'generate', requestId, agentId: 'agent-1', input: { kind: 'chat', messages: [{ role: 'user', content }] }, sampling, stop: [] };
}

type Outcome = { text: string; started: boolean; done?: CompletedMessage; error?: ErrorPayload };

/** Runs one request and resolves with what its handlers saw once it ended either way. */
function run(client: EngineClient, message: GenerateMessage): { requestId: string; outcome: Promise<Outcome>; abort(): void } {
  const outcome: Outcome = { text: '', started: false };
  let generation!: ReturnType<EngineClient['generate']>;
  const ended = new Promise<Outcome>((resolve) => {
    generation = client.generate(message, {
      onStarted: () => (outcome.started = true),
      onTokens: (tokens) => (outcome.text += tokens.text),
      onDone: (done) => resolve({ ...outcome, done }),
      onFailed: (error) => resolve({ ...outcome, error }),
    });
  });
  return { requestId: generation.requestId, outcome: ended, abort: () => generation.abort() };
}

t.test('nothing is served before ready: ERR_NOT_READY with a retry hint', async (t) => {
  const client = startClient(t, 'fake://never-ready');
  t.equal(client.state, 'starting');
  const { outcome } = run(client, chat('r1', 'echo:hi'));
  const result = await outcome;
  t.same(result.error, { code: 'ERR_NOT_READY', message: 'The model is still loading.', retryAfter: 1 });
  t.equal(result.started, false);
  await t.rejects(client.stats(), { code: 'ERR_NOT_READY' });
  t.equal(client.pendingCount, 0);
});

t.test('ready resolves with the model; a request streams and ends', async (t) => {
  const client = startClient(t);
  const model = await client.ready;
  t.equal(model.id, 'fake-model');
  t.equal(client.state, 'ready');
  t.same(client.model, model);
  const result = await run(client, chat('r1', 'echo:Hello big world')).outcome;
  t.equal(result.started, true);
  t.equal(result.text, 'Hello big world');
  t.same(result.done, { type: 'done', requestId: 'r1', finishReason: 'stop', usage: { promptTokens: 7, completionTokens: 3, cachedTokens: 2 } });
  t.equal(client.pendingCount, 0);
});

t.test('frames are dispatched by requestId, even interleaved', async (t) => {
  const client = startClient(t);
  await client.ready;
  const a = run(client, chat('A', 'hold'));
  const b = run(client, chat('B', 'hold'));
  const c = run(client, chat('C', 'release'));
  // The fake answers B before A, each with its own id as its only text.
  t.same((await a.outcome).text, 'A');
  t.same((await b.outcome).text, 'B');
  t.same((await c.outcome).text, 'released');
});

t.test('an aborted request gets no more callbacks; its id is not reused until the engine let it go', async (t) => {
  const client = startClient(t);
  await client.ready;
  let calls = 0;
  const generation = client.generate(chat('X', 'hold'), {
    onStarted: () => calls++,
    onTokens: () => calls++,
    onDone: () => calls++,
    onFailed: () => calls++,
  });
  generation.abort();
  generation.abort();
  const again = run(client, chat('X', 'echo:second'));
  t.equal(again.requestId, 'X#2', 'the old X is still in flight at the engine');
  t.equal((await again.outcome).text, 'second');
  const stats = await client.stats();
  t.equal(stats.steps, 1, 'the fake saw exactly one abort (aborts are idempotent)');
  t.equal(stats.activeSequences, 0);
  t.equal(calls, 0);
  t.equal(client.pendingCount, 0, 'the engine’s done(abort) released the entry');
  const third = run(client, chat('X', 'echo:third'));
  t.equal(third.requestId, 'X');
  await third.outcome;
});

t.test('an abort the client did not ask for is reported as ERR_ABORTED, never as a finish reason', async (t) => {
  const client = startClient(t);
  await client.ready;
  const result = await run(client, chat('r1', 'engine-abort')).outcome;
  t.equal(result.done, undefined);
  t.equal(result.error?.code, 'ERR_ABORTED');
});

t.test('when the thread exits, every pending request fails with ERR_ENGINE_DEAD', async (t) => {
  const client = startClient(t);
  await client.ready;
  const held = [run(client, chat('A', 'hold')), run(client, chat('B', 'hold'))];
  const crash = run(client, chat('C', 'crash'));
  const stats = client.stats();
  for (const request of [...held, crash]) {
    const result = await request.outcome;
    t.equal(result.error?.code, 'ERR_ENGINE_DEAD', request.requestId);
  }
  await t.rejects(stats, { code: 'ERR_ENGINE_DEAD' });
  t.equal(client.state, 'dead');
  t.match(client.deathError?.message, /exited with code 3/);
  const later = await run(client, chat('D', 'echo:hi')).outcome;
  t.equal(later.error?.code, 'ERR_ENGINE_DEAD');
  t.equal(client.pendingCount, 0);
});

t.test('engine_dead fails pending requests with its reason', async (t) => {
  const client = startClient(t);
  await client.ready;
  const held = run(client, chat('A', 'hold'));
  run(client, chat('B', 'engine-dead'));
  const result = await held.outcome;
  t.same(result.error, { code: 'ERR_ENGINE_DEAD', message: 'decode failed for good' });
});

t.test('a frame that breaks the protocol kills the engine instead of hanging requests', async (t) => {
  const client = startClient(t);
  await client.ready;
  const held = run(client, chat('A', 'hold'));
  run(client, chat('B', 'garbage'));
  const result = await held.outcome;
  t.equal(result.error?.code, 'ERR_ENGINE_DEAD');
  t.match(result.error?.message, /broke the protocol/);
});

t.test('ready rejects when the thread dies before it', async (t) => {
  await t.rejects(startClient(t, 'fake://die-before-ready').ready, { code: 'ERR_ENGINE_DEAD', message: 'model file is not a GGUF' });
  await t.rejects(startClient(t, 'fake://exit-before-ready').ready, { code: 'ERR_ENGINE_DEAD', message: /exited with code 2/ });
});

t.test('close fails pending requests and refuses new ones', async (t) => {
  const client = startClient(t);
  await client.ready;
  const held = run(client, chat('A', 'hold'));
  await client.close();
  t.equal((await held.outcome).error?.code, 'ERR_ENGINE_DEAD');
  t.equal(client.state, 'closed');
  t.equal((await run(client, chat('B', 'echo:x')).outcome).error?.code, 'ERR_ENGINE_DEAD');
});
