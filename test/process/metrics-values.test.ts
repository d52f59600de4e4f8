// The metric catalogue's exact values after a known sequence of requests on a real server: two agents,
// a hot hit, a 429, a stream cut by its client, then a disk hit on a restarted server. Counts, token
// sums (by source), tier counters and histogram counts must equal what the responses themselves say.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tinyModelPath } from '../helpers/model.js';
import { persisted, startServer, type RunningServer } from '../helpers/server.js';
import { readSseData } from '../helpers/sse.js';
import { parseExposition, sample, type Sample } from '../helpers/exposition.js';
import { splitTierBudget } from '../../shared/budgets.js';
import type { ChatMessage } from '../../shared/protocol/messages.js';

const modelPath = await tinyModelPath();
const ROUTE = { route: '/v1/chat/completions', method: 'POST' };
const DISK_BUDGET = 256 * 1024 * 1024;

async function serve(cacheDir: string): Promise<RunningServer> {
  // Sharing off: every cached token comes from the agent's own tier. No queue for a busy agent: its second request is a 429 at once.
  const flags = ['--context-size', '2048', '--cache-dir', cacheDir, '--prefix-sharing', 'off', '--max-queued-per-agent', '0', '--disk-cache-bytes', String(DISK_BUDGET)];
  const server = await startServer(['serve', '--port', '0', '--model', modelPath, '--model-id', 'tiny', '--threads', '1', ...flags]);
  t.teardown(() => server.stop());
  return server;
}

interface Turn {
  status: number;
  tier: string | null;
  text: string;
  finish: string;
  usage: { prompt: number; completion: number; cached: number };
}

const request = (server: RunningServer, agent: string, messages: ChatMessage[], extra: Record<string, unknown> = {}, signal?: AbortSignal) =>
  fetch(`${server.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-agent-id': agent },
    body: JSON.stringify({ model: 'tiny', messages, max_tokens: 12, temperature: 0, ...extra }),
    ...(signal === undefined ? {} : { signal }),
  });

async function turn(server: RunningServer, agent: string, messages: ChatMessage[]): Promise<Turn> {
  const response = await request(server, agent, messages);
  const body = (await response.json()) as {
    choices: { message: { content: string }; finish_reason: string }[];
    usage: { prompt_tokens: number; completion_tokens: number; prompt_tokens_details: { cached_tokens: number } };
  };
  const { prompt_tokens: prompt, completion_tokens: completion, prompt_tokens_details } = body.usage;
  const choice = body.choices[0]!;
  return {
    status: response.status,
    tier: response.headers.get('x-semantic-cache'),
    text: choice.message.content,
    finish: choice.finish_reason,
    usage: { prompt, completion, cached: prompt_tokens_details.cached_tokens },
  };
}

/** Every scrape's text, for promtool at the end. */
const scraped: string[] = [];

async function scrape(server: RunningServer): Promise<Sample[]> {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  scraped.push(text);
  return parseExposition(text);
}

/** promtool's exit code and findings for one exposition, read on stdin. */
function promtool(text: string): { status: number | null; output: string } {
  const run = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
  return { status: run.status, output: `${run.stdout}${run.stderr}` };
}

const hasPromtool = spawnSync('promtool', ['--version']).status === 0;

async function engine(server: RunningServer): Promise<{ activeSequences: number; steps: number }> {
  return (await (await fetch(`${server.url}/debug/engine`)).json()) as { activeSequences: number; steps: number };
}

/** Polls until no request runs (bounded: 20 s): the cut stream's end has reached the engine. */
async function untilIdle(server: RunningServer): Promise<void> {
  for (let i = 0; i < 400; i++) {
    if ((await engine(server)).activeSequences === 0) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error('a request still runs after 20 s');
}

/** A long stream of `agent`, cut by its client after its first content chunk; `during` runs while it streams. */
async function cutStream(server: RunningServer, agent: string, messages: ChatMessage[], during: () => Promise<void>): Promise<number> {
  const controller = new AbortController();
  let chunks = 0;
  let first!: () => void;
  const streaming = new Promise<void>((resolve) => (first = resolve));
  const response = await request(server, agent, messages, { stream: true, max_tokens: 1500 }, controller.signal);
  const reading = readSseData(response, (data) => {
    if (!/"content":"[^"]/.test(data)) return; // a token's text (the role chunk's content is empty)
    chunks++;
    first();
  }).catch(() => []);
  await streaming;
  await during();
  controller.abort();
  await reading;
  return chunks;
}

const writesOf = (server: RunningServer, agentId: string): number => server.logs.filter((line) => line.msg === 'agent cache persisted' && line.agentId === agentId).length;

const counted = (turns: Turn[], pick: (turn: Turn) => number): number => turns.reduce((sum, turn) => sum + pick(turn), 0);

const a1: ChatMessage[] = [{ role: 'user', content: 'Remember the number 42 and the colour teal.' }];
const b1: ChatMessage[] = [{ role: 'user', content: 'Write a short line about rivers.' }];

t.test('exact values after two agents, a hot hit, a 429, a cut stream, then a disk hit after a restart', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'semantic-metrics-'));
  const first = await serve(dir);
  const turnA1 = await turn(first, 'A', a1);
  const turnB1 = await turn(first, 'B', b1);
  const a2: ChatMessage[] = [...a1, { role: 'assistant', content: turnA1.text }, { role: 'user', content: 'Which number was it?' }];
  const turnA2 = await turn(first, 'A', a2);
  const aWrites = writesOf(first, 'A');
  t.same([turnA1.tier, turnB1.tier, turnA2.tier], ['miss', 'miss', 'hot']);
  let rejected = 0;
  // C asks what B asked (sharing is off, so a miss of B's prompt length); its second request finds C busy.
  const streamed = await cutStream(first, 'C', b1, async () => {
    rejected = (await request(first, 'C', b1)).status;
  });
  t.equal(rejected, 429);
  await untilIdle(first);
  const { steps } = await engine(first);
  const one = await scrape(first);
  const whole = [turnA1, turnB1, turnA2];
  const ok = (turn: Turn): boolean => turn.usage.completion > 0;

  t.equal(sample(one, 'semantic_request_total', { ...ROUTE, status: '200' }), 4, 'three turns and the cut stream (its status was sent)');
  t.equal(sample(one, 'semantic_request_total', { ...ROUTE, status: '429' }), 1);
  t.equal(sample(one, 'semantic_admission_rejections_total', { reason: 'agent_queue_full' }), 1);

  const prompts = counted(whole, (turn) => turn.usage.prompt) + turnB1.usage.prompt;
  t.equal(sample(one, 'semantic_prompt_tokens_total'), prompts);
  t.equal(sample(one, 'semantic_prompt_tokens_by_source_total', { source: 'hot' }), turnA2.usage.cached);
  t.ok(turnA2.usage.cached > 0);
  t.equal(sample(one, 'semantic_prompt_tokens_by_source_total', { source: 'computed' }), prompts - turnA2.usage.cached);
  t.equal(sample(one, 'semantic_request_prompt_tokens_sum'), prompts);
  t.equal(sample(one, 'semantic_request_prompt_tokens_count'), 4);
  t.equal(sample(one, 'semantic_cache_hit_total', { tier: 'hot' }), 1);
  t.equal(sample(one, 'semantic_cache_miss_total'), 3);

  // The cut stream's generated tokens: what the engine counted beyond the three known turns.
  const generated = sample(one, 'semantic_tokens_generated_total')!;
  const cutTokens = generated - counted(whole, (turn) => turn.usage.completion);
  t.ok(cutTokens >= streamed && cutTokens < 1500, `the cut stream generated ${cutTokens} tokens, at least the ${streamed} chunks its client read`);
  t.equal(sample(one, 'semantic_request_generation_tokens_sum'), generated);
  t.equal(sample(one, 'semantic_request_generation_tokens_count'), 4);

  const firstTokens = whole.filter(ok).length + 1;
  t.equal(sample(one, 'semantic_time_to_first_token_seconds_count'), firstTokens, 'one per request that produced a first token');
  t.equal(sample(one, 'semantic_request_prefill_time_seconds_count'), firstTokens);
  t.equal(sample(one, 'semantic_request_decode_time_seconds_count'), firstTokens);
  t.equal(sample(one, 'semantic_inter_token_latency_seconds_count'), counted(whole.filter(ok), (turn) => turn.usage.completion - 1) + cutTokens - 1);
  t.equal(sample(one, 'semantic_e2e_request_latency_seconds_count'), 4);
  t.equal(sample(one, 'semantic_request_queue_time_seconds_count'), 4);
  t.equal(sample(one, 'semantic_batch_size_count'), steps, 'one observation per decode step');
  const finishes = { stop: 0, length: 0 };
  for (const turn of whole) finishes[turn.finish as 'stop' | 'length']++;
  t.equal(sample(one, 'semantic_request_success_total', { finish_reason: 'abort' }), 1, 'the cut stream');
  for (const [reason, count] of Object.entries(finishes)) t.equal(sample(one, 'semantic_request_success_total', { finish_reason: reason }) ?? 0, count, reason);
  t.equal(sample(one, 'semantic_num_requests_running'), 0);
  t.equal(sample(one, 'semantic_num_requests_waiting'), 0);
  t.equal(sample(one, 'semantic_request_queue_limit'), 64, 'the --max-queued default the queue depth is measured against');
  t.equal(sample(one, 'semantic_disk_tier_budget_bytes'), splitTierBudget(DISK_BUDGET).agentBytes, "the agents' share of --disk-cache-bytes");
  t.equal(sample(one, 'semantic_agents', { tier: 'hot' }), 3, 'A, B and C idle in the context');
  t.equal(sample(one, 'semantic_model_info', { model: 'tiny', kv_type: 'f16', context: '2048' }), 1);
  t.ok(sample(one, 'semantic_memory_used_bytes', { kind: 'kv' })! > 0);
  t.ok(sample(one, 'semantic_memory_used_bytes', { kind: 'process' })! > 0);
  t.equal(one.filter((s) => s.name === 'semantic_build_info').length, 1);
  // Every agent's last turn written behind before the stop, so the drain has nothing left to write (it then races the step loop's own write-behind: see the report of issue 16).
  await Promise.all([persisted(first, 'A', aWrites + 1), persisted(first, 'B'), persisted(first, 'C')]);
  await first.stop();

  const second = await serve(dir);
  const a3: ChatMessage[] = [...a2, { role: 'assistant', content: turnA2.text }, { role: 'user', content: 'And the colour?' }];
  const turnA3 = await turn(second, 'A', a3);
  t.equal(turnA3.tier, 'disk');
  const two = await scrape(second);
  t.equal(sample(two, 'semantic_request_total', { ...ROUTE, status: '200' }), 1);
  t.equal(sample(two, 'semantic_cache_hit_total', { tier: 'disk' }), 1);
  t.equal(sample(two, 'semantic_cache_miss_total'), 0);
  t.equal(sample(two, 'semantic_prompt_tokens_by_source_total', { source: 'disk' }), turnA3.usage.cached);
  t.equal(sample(two, 'semantic_prompt_tokens_by_source_total', { source: 'computed' }), turnA3.usage.prompt - turnA3.usage.cached);
  t.equal(sample(two, 'semantic_cache_restore_duration_seconds_count', { tier: 'disk' }), 1);
  t.equal(sample(two, 'semantic_tokens_generated_total'), turnA3.usage.completion);
  const files = readdirSync(dir).filter((name) => name.endsWith('.safetensors')).length;
  t.equal(sample(two, 'semantic_disk_tier_files'), files, `the ${files} files in the cache dir`);
  t.equal(sample(two, 'semantic_agents', { tier: 'disk' }), files);
});

t.test(
  'promtool check metrics: both live scrapes are clean (rc 0, no findings)',
  { skip: hasPromtool || process.env.CI === 'true' ? false : "promtool is not installed (.ci/run installs Debian's prometheus package)" },
  async (t) => {
    t.equal(scraped.length, 2);
    for (const text of scraped) t.same(promtool(text), { status: 0, output: '' });
  },
);
