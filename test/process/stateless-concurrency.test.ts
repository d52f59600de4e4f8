// Stateless clients that send the same conversation at once (no agent id: it is derived from the
// opening) run side by side, not one behind another: the engine decodes several of them in one step.
// A named agent's requests still run one at a time, in arrival order. Every output is the cold run's.
import t from 'tap';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { greedyReference } from '../helpers/greedy.js';
import { tinyModelPath } from '../helpers/model.js';
import { startServer, type RunningServer } from '../helpers/server.js';
import type { ChatMessage } from '../../shared/protocol/messages.js';

const modelPath = await tinyModelPath();
const CLIENTS = 8;
const MAX = 16;
const messages: ChatMessage[] = [
  { role: 'system', content: 'You answer questions about the rivers of Europe in one sentence.' },
  { role: 'user', content: 'Which river flows through Vienna?' },
];
const cold = await greedyReference(modelPath, messages, MAX);

const server: RunningServer = await startServer([
  'serve',
  '--port',
  '0',
  '--model',
  modelPath,
  '--model-id',
  'tiny',
  '--threads',
  '1',
  '--context-size',
  '2048',
  '--max-sequences',
  String(CLIENTS),
  '--max-queued-per-agent',
  String(CLIENTS - 1),
  '--cache-dir',
  mkdtempSync(join(tmpdir(), 'semantic-stateless-')),
]);
t.teardown(() => server.stop());

async function ask(headers: Record<string, string>): Promise<{ status: number; text: string; completion: number }> {
  const response = await fetch(`${server.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ model: 'tiny', messages, max_tokens: MAX, temperature: 0 }),
  });
  const body = (await response.json()) as { choices: { message: { content: string } }[]; usage: { completion_tokens: number } };
  return { status: response.status, text: body.choices[0]?.message.content ?? '', completion: body.usage.completion_tokens };
}

async function multiSequenceSteps(): Promise<number> {
  const stats = (await (await fetch(`${server.url}/debug/engine`)).json()) as { multiSequenceSteps: number; activeSequences: number };
  t.equal(stats.activeSequences, 0, 'read between loads');
  return stats.multiSequenceSteps;
}

t.test('identical requests without an agent id run in parallel, each with the cold output', async (t) => {
  const before = await multiSequenceSteps();
  const answers = await Promise.all(Array.from({ length: CLIENTS }, () => ask({})));
  t.same(
    answers.map((a) => a.status),
    Array(CLIENTS).fill(200),
  );
  t.same(
    answers.map((a) => a.completion),
    Array(CLIENTS).fill(cold.tokens.length),
  );
  t.same(
    answers.map((a) => a.text),
    Array(CLIENTS).fill(cold.text),
    'every output is the cold greedy run, token for token',
  );
  const shared = (await multiSequenceSteps()) - before;
  t.ok(shared >= MAX / 2, `${shared} decode steps carried several of them at once`);
});

t.test("one named agent's requests still run one at a time, in order", async (t) => {
  const before = await multiSequenceSteps();
  const answers = await Promise.all(Array.from({ length: CLIENTS }, () => ask({ 'x-agent-id': 'ordered' })));
  t.same(
    answers.map((a) => a.status),
    Array(CLIENTS).fill(200),
  );
  t.same(
    answers.map((a) => a.text),
    Array(CLIENTS).fill(cold.text),
  );
  t.equal((await multiSequenceSteps()) - before, 0, 'no step carried two of them');
});

t.test('a fork keeps no cache of its own: the derived agent is the only one left', async (t) => {
  const agents = (await (await fetch(`${server.url}/v1/agents`)).json()) as { data: { id: string }[] };
  const ids = agents.data.map((a) => a.id);
  t.equal(ids.filter((id) => id.startsWith('conv-')).length, 1, `agents: ${ids.join(', ')}`);
  t.equal(ids.filter((id) => id.includes('#')).length, 0);
});
