// The admin API's model swap (worker/inference/swap.ts ModelHost) over engines on the fake addon:
// requests already running finish on the old model, frames that arrive meanwhile wait and then go
// to the new one (aborts go through at once), a failed load rolls back, a failed rollback answers
// every held frame. The loader builds each runtime from the fake addon instead of runtime.ts.
import t from 'tap';
import { ModelHost, type RuntimeLoader } from '../../worker/inference/swap.js';
import type { LoadEnvironment } from '../../worker/inference/runtime.js';
import { Engine } from '../../worker/engine/engine.js';
import { EngineMetrics } from '../../worker/engine/metrics.js';
import type { DiskTier } from '../../worker/persistence/disk-tier.js';
import type { FrontToInference, InferenceToFront } from '../../shared/protocol/messages.js';
import { FakeAddon, type FakeModel } from '../helpers/fake-addon.js';
import { baseSettings, generate, line } from '../helpers/engine-harness.js';

interface Swapping {
  addon: FakeAddon;
  host: ModelHost;
  posted: InferenceToFront[];
  /** Loads and retirements, in order: `load old.gguf`, `retired old.gguf`. */
  events: string[];
  /** Frames served, with the model that served them: `old.gguf generate`. */
  served: string[];
  /** Waits until a posted message matches (each post wakes the wait). */
  until: (match: (message: InferenceToFront) => boolean) => Promise<void>;
  metrics: EngineMetrics;
}

/** The swap metrics: swaps by result, and how many durations were observed. */
async function swapMetrics(metrics: EngineMetrics): Promise<{ results: Record<string, number>; durations: number }> {
  const json = await metrics.json();
  const results: Record<string, number> = {};
  for (const value of json.find((metric) => metric.name === 'semantic_model_swap_total')?.values ?? []) results[String(value.labels.result)] = value.value;
  const histogram = json.find((metric) => metric.name === 'semantic_model_swap_duration_seconds');
  const durations =
    (histogram?.values as { metricName?: string; value: number }[] | undefined)?.find((value) => value.metricName === 'semantic_model_swap_duration_seconds_count')?.value ?? 0;
  return { results, durations };
}

async function setup(): Promise<Swapping> {
  const addon = new FakeAddon();
  const posted: InferenceToFront[] = [];
  let wake: (() => void)[] = [];
  const post = (message: InferenceToFront): void => {
    posted.push(message);
    for (const resolve of wake.splice(0)) resolve();
  };
  const metrics = new EngineMetrics();
  const environment: LoadEnvironment = { addon, options: {} as LoadEnvironment['options'], post, limits: {}, metrics };
  const events: string[] = [];
  const pathOf = new Map<Engine, string>();
  const runtimes: RuntimeLoader = {
    async load(env, { path, id }) {
      events.push(`load ${path}`);
      const model = (await addon.loadModel(path)) as FakeModel;
      const context = await addon.createContext(model, { nCtx: 256, nSeqMax: 4, nBatch: 64 });
      const engine = new Engine(env.addon, model, context, { ...baseSettings }, env.post);
      pathOf.set(engine, path);
      const summary = { id, path, architecture: 'fake', contextLength: 4096, vocabSize: 128, engineContext: 256, maxSequences: 4, toolFormat: 'hermes' as const, reasoning: null };
      return { model, context, engine, disk: undefined as unknown as DiskTier, summary };
    },
    async retire(runtime) {
      const persisted = await runtime.engine.retire();
      runtime.context.dispose();
      runtime.model.dispose();
      events.push(`retired ${runtime.summary.path}`);
      return persisted;
    },
  };
  const served: string[] = [];
  const serve = (engine: Engine, message: FrontToInference): void => {
    served.push(`${pathOf.get(engine)} ${message.type}`);
    if (message.type === 'generate') engine.submit(message);
    if (message.type === 'abort') engine.abort(message.requestId);
    if (message.type === 'count_tokens') post({ type: 'token_count', requestId: message.requestId, inputTokens: engine.countTokens(message.input) });
  };
  const host = new ModelHost(await runtimes.load(environment, { path: 'old.gguf', id: 'old' }), environment, serve, runtimes);
  const until = async (match: (message: InferenceToFront) => boolean): Promise<void> => {
    while (!posted.some(match)) await new Promise<void>((resolve) => wake.push(resolve));
  };
  wake = [];
  return { addon, host, posted, events, served, until, metrics };
}

const swapTo = (path: string, requestId = 's1'): FrontToInference => ({ type: 'swap_model', requestId, path, id: path.replace('.gguf', '') });
const countTokens = (requestId: string): FrontToInference => ({ type: 'count_tokens', requestId, input: { kind: 'text', prompt: 'four' } });
const lines = (s: Swapping): string[] =>
  s.posted.map((m) => (m.type === 'model_swapped' ? `model_swapped ${m.model.id}${m.error === undefined ? '' : ` ${m.error.code}`}` : line(m)));

t.test('a swap lets the running request finish on the old model, holds what arrives, then serves it with the new one', async (t) => {
  const s = await setup();
  s.host.receive(generate('a', 'agent-a', 'hello', 3));
  s.host.receive(swapTo('new.gguf'));
  s.host.receive(countTokens('c1'));
  s.host.receive(generate('b', 'agent-b', 'world', 1));
  await s.until((m) => m.type === 'done' && m.requestId === 'b');
  t.same(lines(s), [
    'started a miss 0',
    'tokens a "f"',
    'tokens a "g"',
    'tokens a "h"',
    'done a length 5/3/0',
    'model_swapped new',
    'token_count',
    'started b miss 0',
    'tokens b "f"',
    'done b length 5/1/0',
  ]);
  t.same(s.events, ['load old.gguf', 'retired old.gguf', 'load new.gguf']);
  t.same(s.served, ['old.gguf generate', 'new.gguf count_tokens', 'new.gguf generate']);
  const [oldModel, newModel] = s.addon.models;
  t.same([oldModel?.disposed, oldModel?.contexts, newModel?.disposed], [true, 0, false], 'the old model and its context are freed');
  t.same(await swapMetrics(s.metrics), { results: { ok: 1, rolled_back: 0, failed: 0 }, durations: 1 });
});

t.test('an abort reaches the request still running on the old model during a swap', async (t) => {
  const s = await setup();
  s.host.receive(generate('a', 'agent-a', 'hello', 50));
  await s.until((m) => m.type === 'tokens');
  s.host.receive(swapTo('new.gguf'));
  s.host.receive({ type: 'abort', requestId: 'a' });
  await s.until((m) => m.type === 'model_swapped');
  t.same(lines(s), ['started a miss 0', 'tokens a "f"', 'done a abort 5/1/0', 'model_swapped new']);
  t.same(s.served, ['old.gguf generate', 'old.gguf abort']);
});

t.test('a second swap while one runs is refused with ERR_CONFLICT', async (t) => {
  const s = await setup();
  s.host.receive(swapTo('new.gguf', 's1'));
  s.host.receive(swapTo('other.gguf', 's2'));
  await s.until((m) => m.type === 'model_swapped');
  t.same(lines(s), ['failed s2 ERR_CONFLICT', 'model_swapped new']);
  t.same(s.events, ['load old.gguf', 'retired old.gguf', 'load new.gguf']);
});

t.test('a model that fails to load: the old one is loaded back and serves the held frames; the answer says why', async (t) => {
  const s = await setup();
  s.addon.failingPaths.add('broken.gguf');
  s.host.receive(swapTo('broken.gguf'));
  s.host.receive(countTokens('c1'));
  await s.until((m) => m.type === 'token_count');
  t.same(lines(s), ['model_swapped old ERR_MODEL_LOAD_FAILED', 'token_count']);
  t.match(s.posted[0], {
    error: { param: 'path', message: 'Could not load broken.gguf: failed to load model from broken.gguf. The previous model old was loaded back and serves again.' },
  });
  t.same(s.events, ['load old.gguf', 'retired old.gguf', 'load broken.gguf', 'load old.gguf']);
  t.same(s.served, ['old.gguf count_tokens']);
  t.same(await swapMetrics(s.metrics), { results: { ok: 0, rolled_back: 1, failed: 0 }, durations: 1 });
});

t.test('when loading the old model back fails too, the engine is dead and every held frame is answered', async (t) => {
  const s = await setup();
  s.addon.failingPaths.add('broken.gguf');
  s.host.receive(swapTo('broken.gguf'));
  s.addon.failingPaths.add('old.gguf');
  s.host.receive(countTokens('c1'));
  s.host.receive(generate('b', 'agent-b', 'world', 1));
  await s.until((m) => m.type === 'failed' && m.requestId === 'b');
  t.same(lines(s), ['engine_dead ERR_ENGINE_DEAD', 'failed c1 ERR_ENGINE_DEAD', 'failed b ERR_ENGINE_DEAD']);
  t.match(s.posted[0], {
    error: { message: 'a model swap failed (failed to load model from broken.gguf) and loading the previous model back failed too: failed to load model from old.gguf' },
  });
  t.same(s.served, [], 'nothing served');
  t.same(await swapMetrics(s.metrics), { results: { ok: 0, rolled_back: 0, failed: 1 }, durations: 1 });
});
