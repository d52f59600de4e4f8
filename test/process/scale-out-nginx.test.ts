// Agent-affine scale-out with a real proxy: two `semantic serve` replicas on one shared cache dir behind
// Debian's nginx, run with the shipped ops/nginx/semantic.conf (only addresses replaced). 16 agents
// hash across both replicas; one replica gets SIGTERM in the middle of the agents' client loops and no
// client request fails (nginx resends what the draining replica refuses); the drained replica's agents
// are served by the other one from the shared disk tier with greedy output equal to a cold run; the
// replica started again on its port takes its agents back by the ring and serves them from disk.
import t, { type Test } from 'tap';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { greedyReference } from '../helpers/greedy.js';
import { tinyModelPath } from '../helpers/model.js';
import { answeredBy, nginxPath, startNginx, UPSTREAM_HEADER } from '../helpers/nginx.js';
import { persisted, startServer, tinyServeArgs, type RunningServer } from '../helpers/server.js';
import { readSseData } from '../helpers/sse.js';
import type { ChatMessage } from '../../shared/protocol/messages.js';

nginxPath(); // fails the file at once, with how to install it, when nginx is missing
const modelPath = await tinyModelPath();
const MAX = 6;
const AGENTS = Array.from({ length: 16 }, (_, i) => `scale-agent-${i}`);
const LOOP_TURNS = 4;
const cacheDir = mkdtempSync(join(tmpdir(), 'semantic-shared-cache-'));

const replicaArgs = (port: number): string[] => tinyServeArgs(modelPath, { 'context-size': 4096, 'max-sequences': 8, 'cache-dir': cacheDir }, port);

interface Turn {
  status: number;
  /** The replica's port, from the proxy's upstream header. */
  replica: number;
  /** nginx tried another replica first (it refused the connection or answered 503). */
  resent: boolean;
  agentHeader: string | null;
  tier: string | null;
  cached: number;
  text: string;
  /** The body ended as a finished answer: a JSON body with a finish reason, or a stream through [DONE]. */
  complete: boolean;
  /** performance.now() when the answer was read whole. */
  endedAt: number;
}

interface Chunk {
  choices: { delta?: { content?: string }; finish_reason?: string | null }[];
  usage?: { prompt_tokens_details: { cached_tokens: number } };
}

async function readStream(response: Response): Promise<Pick<Turn, 'cached' | 'text' | 'complete'>> {
  const events = await readSseData(response);
  const chunks = events.filter((data) => data !== '[DONE]').map((data) => JSON.parse(data) as Chunk);
  const text = chunks.map((chunk) => chunk.choices[0]?.delta?.content ?? '').join('');
  const finished = chunks.some((chunk) => typeof chunk.choices[0]?.finish_reason === 'string');
  const cached = chunks.find((chunk) => chunk.usage !== undefined)?.usage?.prompt_tokens_details.cached_tokens ?? -1;
  return { text, cached, complete: finished && events.at(-1) === '[DONE]' };
}

async function readJson(response: Response): Promise<Pick<Turn, 'cached' | 'text' | 'complete'>> {
  const body = (await response.json()) as { choices?: { message: { content: string }; finish_reason: string }[]; usage?: Chunk['usage'] };
  const choice = body.choices?.[0];
  return { text: choice?.message.content ?? '', cached: body.usage?.prompt_tokens_details.cached_tokens ?? -1, complete: typeof choice?.finish_reason === 'string' };
}

/** One turn through the proxy; odd agents stream, so both kinds of answer cross the drain. */
async function turn(proxyUrl: string, agent: string, messages: ChatMessage[]): Promise<Turn> {
  const stream = Number(agent.split('-').pop()) % 2 === 1;
  const response = await fetch(`${proxyUrl}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-agent-id': agent },
    body: JSON.stringify({ model: 'tiny', messages, max_tokens: MAX, temperature: 0, stream, ...(stream ? { stream_options: { include_usage: true } } : {}) }),
  });
  const read = response.status !== 200 ? { text: await response.text(), cached: -1, complete: false } : stream ? await readStream(response) : await readJson(response);
  const headers = response.headers;
  return {
    status: response.status,
    replica: answeredBy(headers),
    resent: (headers.get(UPSTREAM_HEADER) ?? '').includes(','),
    agentHeader: headers.get('x-semantic-agent-id'),
    tier: headers.get('x-semantic-cache'),
    ...read,
    endedAt: performance.now(),
  };
}

/** One turn as sent and as answered. */
interface Exchange {
  sent: ChatMessage[];
  turn: Turn;
}

/** An agent's conversation: its opening, then each answer and a next question. */
class Conversation {
  readonly messages: ChatMessage[];
  readonly turns: Exchange[] = [];
  constructor(readonly agent: string) {
    this.messages = [{ role: 'user', content: `I am ${agent}. Count my turns with me, starting now.` }];
  }
  async next(proxyUrl: string): Promise<Turn> {
    if (this.turns.length > 0) this.messages.push({ role: 'user', content: `${this.agent}, turn ${this.turns.length + 1}: and next?` });
    const sent = [...this.messages];
    const result = await turn(proxyUrl, this.agent, sent);
    this.turns.push({ sent, turn: result });
    this.messages.push({ role: 'assistant', content: result.text });
    return result;
  }
  get last(): Exchange {
    const last = this.turns.at(-1);
    if (last === undefined) throw new Error(`${this.agent} has no turn`);
    return last;
  }
}

/** The port the proxy routes `agent` to now (a GET carries the same header, so the same hash). */
async function routedTo(proxyUrl: string, agent: string): Promise<number> {
  const response = await fetch(`${proxyUrl}/v1/models`, { headers: { 'x-agent-id': agent } });
  await response.arrayBuffer();
  return answeredBy(response.headers);
}

/** Agents whose KV state the replica holds in memory (hot or RAM), by its own Agents API. */
async function heldInMemory(replica: RunningServer): Promise<string[]> {
  const body = (await (await fetch(`${replica.url}/v1/agents`)).json()) as { data: { id: string; tier: string }[] };
  return body.data
    .filter((a) => a.tier === 'hot' || a.tier === 'ram')
    .map((a) => a.id)
    .sort();
}

async function coldEqual(t: Test, agent: string, { sent, turn: served }: Exchange, what: string): Promise<void> {
  const cold = await greedyReference(modelPath, sent, MAX);
  t.equal(served.text, cold.text, `${agent}: ${what} equals a cold run`);
}

t.test('16 agents on two replicas behind nginx: a drain loses no request, agents move by the shared disk tier and come back', async (t) => {
  const replicas = await Promise.all([startServer(replicaArgs(0)), startServer(replicaArgs(0))]);
  t.teardown(() => Promise.all(replicas.map((replica) => replica.stop())));
  const proxy = await startNginx(
    mkdtempSync(join(tmpdir(), 'semantic-nginx-')),
    replicas.map((r) => r.port),
  );
  t.teardown(() => proxy.stop());
  const [victim, survivor] = replicas as [RunningServer, RunningServer];

  // No X-Agent-ID: an empty hash key, which nginx sends round robin (docs/operations.md says so).
  const anonymous = new Set<number>();
  for (let i = 0; i < 4; i++) anonymous.add(answeredBy((await fetch(`${proxy.url}/v1/models`)).headers));
  t.same([...anonymous].sort(), replicas.map((r) => r.port).sort(), 'requests without an agent id go to both replicas');

  // First turns: each agent lands on its replica by the ring, and that replica holds it.
  const conversations = new Map(AGENTS.map((agent) => [agent, new Conversation(agent)]));
  await Promise.all([...conversations.values()].map((c) => c.next(proxy.url)));
  const home = new Map([...conversations.values()].map((c) => [c.agent, c.last.turn.replica]));
  for (const c of conversations.values()) {
    t.equal(c.last.turn.status, 200, `${c.agent}: first turn`);
    t.equal(c.last.turn.agentHeader, c.agent, 'X-Semantic-Agent-ID is the id sent');
  }
  const homedOn = (replica: RunningServer): string[] => AGENTS.filter((agent) => home.get(agent) === replica.port).sort();
  t.ok(homedOn(victim).length > 0 && homedOn(survivor).length > 0, `both replicas got agents: ${homedOn(victim).length} and ${homedOn(survivor).length}`);
  for (const replica of replicas) t.same(await heldInMemory(replica), homedOn(replica), `replica :${replica.port} holds exactly the agents routed to it`);
  // Each first turn is in the shared dir before the load starts, so a moved agent always finds a file.
  for (const agent of AGENTS) await persisted(home.get(agent) === victim.port ? victim : survivor, agent);

  // The load: every agent runs LOOP_TURNS more turns; the victim gets SIGTERM once 16 of them ended.
  let ended = 0;
  let signalledAt = Infinity;
  let victimExit: Promise<number | null> | undefined;
  const loop = async (c: Conversation): Promise<void> => {
    for (let i = 0; i < LOOP_TURNS; i++) {
      await c.next(proxy.url);
      if (++ended !== AGENTS.length) continue;
      signalledAt = performance.now();
      victimExit = victim.stop('SIGTERM');
    }
  };
  await Promise.all([...conversations.values()].map(loop));
  const failed = [...conversations.values()].flatMap((c) =>
    c.turns.filter(({ turn }) => turn.status !== 200 || !turn.complete).map(({ turn }) => `${c.agent}: ${turn.status} ${turn.text.slice(0, 200)}`),
  );
  t.same(failed, [], `all ${AGENTS.length * LOOP_TURNS} client requests through nginx answered 200 with a complete body`);
  t.equal(await victimExit, 0, 'the victim got SIGTERM during the load, drained and exited 0');
  const resent = [...conversations.values()].flatMap((c) => c.turns.filter(({ turn }) => turn.resent)).length;
  t.ok(resent > 0, `nginx resent ${resent} request(s) that the draining replica refused to the other one`);
  for (const c of conversations.values()) {
    const before = c.turns.filter(({ turn }) => turn.endedAt < signalledAt).map(({ turn }) => turn.replica);
    t.same([...new Set(before)], [home.get(c.agent)], `${c.agent}: every turn before the drain on its own replica`);
  }

  // The victim's agents: their first turn on the survivor read the shared disk tier, and is cold-equal.
  for (const agent of homedOn(victim)) {
    const c = conversations.get(agent) as Conversation;
    if (!c.turns.some(({ turn }) => turn.replica === survivor.port)) await c.next(proxy.url); // its loop ended before the drain
    const moved = c.turns.find(({ turn }) => turn.replica === survivor.port) as Exchange;
    t.equal(moved.turn.tier, 'disk', `${agent}: its first turn on the survivor came from the shared disk tier`);
    t.ok(moved.turn.cached > 0, `${agent}: ${moved.turn.cached} prompt tokens read from a file the victim wrote`);
    await coldEqual(t, agent, moved, 'its moved turn');
  }

  // The victim again, on its port: the ring gives it its agents back once nginx retries it (fail_timeout).
  const back = await startServer(replicaArgs(victim.port));
  t.teardown(() => back.stop());
  const returning = homedOn(victim)[0] as string;
  let routed = 0;
  for (let i = 0; i < 150 && (routed = await routedTo(proxy.url, returning)) !== back.port; i++) await new Promise((resolve) => setTimeout(resolve, 100));
  t.equal(routed, back.port, `nginx routes ${returning} to the restarted replica again`);
  for (const agent of AGENTS) t.equal(await routedTo(proxy.url, agent), home.get(agent), `${agent}: routed to its first replica again`);
  for (const agent of homedOn(victim)) {
    const c = conversations.get(agent) as Conversation;
    const next = await c.next(proxy.url);
    t.equal(next.replica, back.port, `${agent}: served by the restarted replica`);
    t.equal(next.tier, 'disk', `${agent}: from the shared disk tier (the restarted process holds nothing in memory)`);
    t.ok(next.cached > 0, `${agent}: ${next.cached} prompt tokens read from its file`);
    await coldEqual(t, agent, c.last, 'its turn back home');
  }
});
