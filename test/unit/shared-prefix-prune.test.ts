// SharedPrefixes keeps the prefix index to agents some tier holds: a flow of new agents, each with a
// prompt that names it (so no lookup ever meets its blocks again), leaves the index bounded by the
// agents cached, not by every agent ever seen. The tiers here are stubs with the real PrefixIndex.
import t from 'tap';
import { PrefixIndex } from '../../worker/engine/kv/prefix-index.js';
import { SharedPrefixes } from '../../worker/engine/kv/shared-prefix.js';
import type { AgentTiers } from '../../worker/engine/kv/tiers.js';
import type { Sequence } from '../../worker/engine/sequence.js';

const blockTokens = 4;

/** A prompt whose first block names the agent, as a system prompt with the agent's name does. */
function promptOf(agent: number): Int32Array {
  return Int32Array.from({ length: 3 * blockTokens }, (_, i) => (i === 0 ? 1000 + agent : i));
}

function setup(): { prefixes: PrefixIndex; held: Set<string>; running: Map<string, Sequence>; shared: SharedPrefixes } {
  const prefixes = new PrefixIndex(blockTokens);
  const held = new Set<string>();
  const peek = (id: string): object | undefined => (held.has(id) ? { tokens: promptOf(-1) } : undefined);
  const tiers = {
    prefixes,
    hot: { peek: () => undefined, entries: () => [] },
    ram: { peek },
    disk: { has: () => false, mayHave: () => false },
    sharedSourceOf: () => undefined,
  } as unknown as AgentTiers;
  const running = new Map<string, Sequence>();
  return { prefixes, held, running, shared: new SharedPrefixes(tiers, running, true) };
}

t.test('agents that left every tier leave the index once it has doubled; held and running ones stay', async (t) => {
  const { prefixes, held, running, shared } = setup();
  for (let agent = 0; agent < 1000; agent++) {
    shared.best(`agent-${agent}`, '*', promptOf(agent), 0); // as the engine does: look up, then index the prompt it runs
    prefixes.set(`agent-${agent}`, '*', promptOf(agent));
    if (agent % 100 === 0) held.add(`agent-${agent}`); // 10 still cached (RAM)
  }
  running.set('request-1', { agentId: 'runner' } as Sequence);
  prefixes.set('runner', '*', promptOf(5000));
  t.ok(prefixes.agents <= 2 * 10 + 64 + 1, `index bounded by the agents held, not the 1,001 seen: ${prefixes.agents}`);
  for (let agent = 0; agent < 1000; agent += 100) t.ok(prefixes.has(`agent-${agent}`), `held agent-${agent} is still indexed`);
  for (let extra = 0; extra < 200; extra++) {
    shared.best(`late-${extra}`, '*', promptOf(2000 + extra), 0);
    prefixes.set(`late-${extra}`, '*', promptOf(2000 + extra));
  }
  t.ok(prefixes.has('runner'), 'an agent with a running request stays indexed through prunes');
});

t.test('a small index is never swept', async (t) => {
  const { prefixes, shared } = setup();
  for (let agent = 0; agent < 60; agent++) prefixes.set(`agent-${agent}`, '*', promptOf(agent));
  shared.best('asking', '*', promptOf(9999), 0);
  t.equal(prefixes.agents, 60, 'under 64 indexed agents: all kept (they cost a lookup at most)');
});
