// An agent whose own cache file another process wrote (a replica it was routed away from, on a shared
// cache dir) is not in this process's disk index, but its own history must still win over another
// agent's shorter shared prefix: prefix sharing steps aside (best() is undefined), so the agent's turn
// starts as a miss and the engine restores its own file. The tiers are stubs with the real PrefixIndex.
import t from 'tap';
import { PrefixIndex } from '../../worker/engine/kv/prefix-index.js';
import { SharedPrefixes } from '../../worker/engine/kv/shared-prefix.js';
import type { AgentTiers } from '../../worker/engine/kv/tiers.js';
import type { Sequence } from '../../worker/engine/sequence.js';

const blockTokens = 4;
/** 3 blocks every agent opens with (a swarm's system prompt), then the asking agent's own history. */
const common = [7, 7, 7, 7, 8, 8, 8, 8, 9, 9, 9, 9];
const prompt = Int32Array.from([...common, 50, 51, 52, 53, 54, 55, 56, 57, 58]);

function sharedPrefixes(files: { indexed: Set<string>; written: Set<string> }): SharedPrefixes {
  const prefixes = new PrefixIndex(blockTokens);
  const other = { tokens: Int32Array.from([...common, 1, 2, 3, 4]), logits: new Float32Array(0) };
  prefixes.set('other', '*', other.tokens);
  const tiers = {
    prefixes,
    hot: { peek: () => undefined, entries: () => [] },
    ram: { peek: (id: string) => (id === 'other' ? other : undefined) },
    disk: { has: (id: string) => files.indexed.has(id), mayHave: (id: string) => files.indexed.has(id) || files.written.has(id) },
    sharedSourceOf: (id: string, tier: string) => ({ agentId: id, tier }),
  } as unknown as AgentTiers;
  return new SharedPrefixes(tiers, new Map<string, Sequence>(), true);
}

t.test("another agent's prefix is offered when the asking agent has no file anywhere", async (t) => {
  const best = sharedPrefixes({ indexed: new Set(), written: new Set() }).best('mover', '*', prompt, 0);
  t.equal(best?.kind, 'saved');
  t.equal(best?.tokens, common.length, 'the 12 tokens of the common opening, from RAM');
});

t.test('a file another process wrote for the asking agent wins over the shared prefix', async (t) => {
  const best = sharedPrefixes({ indexed: new Set(), written: new Set(['mover']) }).best('mover', '*', prompt, 0);
  t.equal(best, undefined, 'no sharing: the agent restores its own file');
});
