/**
 * The crash test's traffic (crash.ts): each agent's conversation as a fixed list of turns, each turn
 * extending the one before (so a later turn reuses a prefix of the agent's cache file), sent as
 * greedy chat completions; and the cold outputs every answer is held to, computed on a fresh cache
 * dir where every turn is a miss.
 */
import type { RunningServer } from '../test/helpers/server.js';

export const MODEL_ID = 'crash';
/** Tokens a turn generates: enough to compare, few enough that a cycle stays short. */
const MAX_TOKENS = 16;
const TOPICS = ['lighthouses and the sea', 'a clockmaker in winter', 'bees on a mountain farm', 'trains crossing a desert', 'a library under a city', 'rivers in spring'];

export interface ChatMessage {
  role: 'user' | 'assistant';
  content: string;
}

/** Turn `turn` (0-based) of agent `agent`: its opening plus `turn` fixed exchanges, a few hundred tokens in all. */
export function turnMessages(agent: number, turn: number): ChatMessage[] {
  const topic = TOPICS[agent % TOPICS.length] as string;
  const opening = `Agent ${agent}. Tell me about ${topic}. ` + `Every detail about ${topic} matters to me, so be thorough. `.repeat(12);
  const messages: ChatMessage[] = [{ role: 'user', content: opening }];
  for (let k = 1; k <= turn; k++) {
    messages.push({ role: 'assistant', content: `Here is part ${k} about ${topic}.` }, { role: 'user', content: `Go on with part ${k + 1}, please. `.repeat(4) });
  }
  return messages;
}

/** One answered turn: where its cache came from (X-Semantic-Cache) and its text. */
export interface Answer {
  status: number;
  cache: string;
  text: string;
}

export async function sendTurn(server: Pick<RunningServer, 'url'>, agentId: string, messages: ChatMessage[]): Promise<Answer> {
  const response = await fetch(`${server.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-agent-id': agentId },
    body: JSON.stringify({ model: MODEL_ID, messages, max_tokens: MAX_TOKENS, temperature: 0 }),
  });
  const body = (await response.json()) as { choices?: { message?: { content?: string } }[]; error?: { message?: string } };
  const text = body.choices?.[0]?.message?.content ?? `(error: ${body.error?.message ?? 'no choices'})`;
  return { status: response.status, cache: response.headers.get('x-semantic-cache') ?? 'none', text };
}

/** `POST /admin/model` onto the model at `path`, served under the same id (clients never change the model they name). */
export async function swapModel(server: Pick<RunningServer, 'url'>, path: string): Promise<number> {
  const response = await fetch(`${server.url}/admin/model`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ path, id: MODEL_ID }),
  });
  await response.arrayBuffer();
  return response.status;
}

/** Cold outputs by model, agent and turn: `cold.get(model)[agent][turn]`. */
export type ColdTable = Map<string, string[][]>;

/**
 * Every agent's every turn on `model`, one at a time, each under an agent id never used before: a
 * miss with no other request beside it, the reference a cached or batched answer must equal.
 */
export async function coldOutputs(server: Pick<RunningServer, 'url'>, agents: number, turns: number, label: string): Promise<string[][]> {
  const table: string[][] = [];
  for (let agent = 0; agent < agents; agent++) {
    const row: string[] = [];
    for (let turn = 0; turn < turns; turn++) {
      const answer = await sendTurn(server, `cold-${label}-${agent}-${turn}`, turnMessages(agent, turn));
      if (answer.status !== 200 || answer.cache !== 'miss')
        throw new Error(`cold run of agent ${agent} turn ${turn} on ${label}: status ${answer.status}, cache ${answer.cache}: ${answer.text}`);
      row.push(answer.text);
    }
    table.push(row);
  }
  return table;
}
