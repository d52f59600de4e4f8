/**
 * Prefix sharing across agents: for a request's prompt, the longest prefix some other agent of its
 * sharing scope already has cached, and where — its cells in the context (a running request's
 * prefilled cells or an idle agent's hot cells), its RAM state, or its cache file (also after a
 * restart). The tiers' PrefixIndex names the candidates in time proportional to the prompt; each is
 * then checked against its actual tokens, so only a real common prefix is ever reused.
 *
 * Cells in the context are shared, not copied: in a unified KV cache llama_memory_seq_cp only adds
 * the new sequence to the cells' sequence sets. With `--kv-unified false` each sequence has its own
 * stream and llama.cpp cannot copy part of one stream into another (it aborts), so there only saved
 * states (RAM, disk) are shared, cut to the prefix before they are imported.
 */
import { runningSequenceOf, type Sequence } from '../sequence.js';
import type { SharedFrom } from '../../../shared/protocol/messages.js';
import { commonPrefixLength, reusablePrefix } from './hot-cache.js';
import type { AgentTiers, RestoreSource } from './tiers.js';

export type SharedPrefix =
  | { kind: 'cells'; from: 'active' | 'hot'; seqId: number; tokens: number; logits?: Float32Array | undefined }
  | { kind: 'saved'; from: 'ram' | 'disk'; restore: RestoreSource; tokens: number };

/** A candidate weighed: a saved one names its agent, and its restore is built only if it wins. */
type Option =
  | { kind: 'own'; tokens: number; rank: number }
  | (Extract<SharedPrefix, { kind: 'cells' }> & { rank: number })
  | { kind: 'saved'; from: 'ram' | 'disk'; agentId: string; tokens: number; rank: number };

/**
 * Candidates taken from the index per request. Every one holds the index's deepest common block, and
 * they differ by less than one block past it, so weighing a few loses at most a few tokens; a
 * stateless flood leaves thousands of one-shot agents in RAM that all share the chat template's
 * opening block, and weighing each cost more than the request. Agents with cells in the context are
 * weighed besides (no more of them than sequences): sharing their cells costs no import.
 */
const INDEXED_CANDIDATES = 8;

/** Faster sources win ties: shared cells cost nothing, a RAM state one import, a file a read and an import. */
const RANK: Record<SharedFrom, number> = { active: 0, hot: 0, ram: 1, disk: 2 };

/** Indexed agents a prune may leave behind it before the next one (a small index is never swept). */
const PRUNE_SLACK = 64;

export class SharedPrefixes {
  /** Agents indexed after the last prune: the next one waits until the index has doubled. */
  private indexedAfterPrune = 0;

  constructor(
    private readonly tiers: AgentTiers,
    /** Running requests, by request id. */
    private readonly active: ReadonlyMap<string, Sequence>,
    /** Whether every sequence lives in one KV stream (kvUnified), so cells can be shared. */
    private readonly cellsShareable: boolean,
  ) {}

  /**
   * The best prefix another agent of `scope` offers `prompt`, if it beats `atLeast` tokens (what the
   * agent's own hot cells give). Undefined when sharing is off for the request, nothing longer is
   * cached, or the agent's own saved state is at least as good (its usual restore path takes it).
   */
  best(agentId: string, scope: string | undefined, prompt: Int32Array, atLeast: number): SharedPrefix | undefined {
    if (scope === undefined) return undefined;
    this.pruneWhenDoubled();
    const gone: string[] = [];
    const holds = (id: string): boolean => this.holds(id, agentId) || (gone.push(id), false);
    const found = this.tiers.prefixes.longest(scope, prompt, holds, INDEXED_CANDIDATES);
    for (const id of gone) this.tiers.prefixes.remove(id);
    if (found.tokens <= atLeast) return undefined;
    const candidates = new Set(found.agents);
    for (const id of this.inContext()) if (found.holders.has(id) && holds(id)) candidates.add(id);
    let best: Option | undefined = this.ownOption(agentId, prompt);
    for (const id of candidates) {
      const option = this.optionOf(id, agentId, prompt, found.tokens);
      if (option !== undefined && (best === undefined || option.tokens > best.tokens || (option.tokens === best.tokens && option.rank < best.rank))) best = option;
    }
    if (best === undefined || best.kind === 'own' || best.tokens <= atLeast) return undefined;
    if (best.kind === 'cells') return { kind: 'cells', from: best.from, seqId: best.seqId, tokens: best.tokens, logits: best.logits };
    const restore = this.tiers.sharedSourceOf(best.agentId, best.from);
    return restore === undefined ? undefined : { kind: 'saved', from: best.from, restore, tokens: best.tokens };
  }

  /**
   * Drops from the index every agent no tier holds and no request runs for. A lookup drops the ones
   * it meets, but the blocks of a prompt that names its agent are never looked up again, so without
   * this every agent ever seen would stay indexed: a slow leak under a flow of new or one-shot
   * agents. Sweeping only once the index has doubled keeps the cost per indexed agent constant.
   */
  private pruneWhenDoubled(): void {
    const { prefixes, hot, ram, disk } = this.tiers;
    if (prefixes.agents < 2 * this.indexedAfterPrune + PRUNE_SLACK) return;
    const running = new Set([...this.active.values()].map((sequence) => sequence.agentId));
    prefixes.retain((id) => running.has(id) || hot.peek(id) !== undefined || ram.peek(id) !== undefined || disk?.has(id) === true);
    this.indexedAfterPrune = prefixes.agents;
  }

  /** Whether the agent has a cache another request could read now (the asking agent: a saved one). */
  private holds(id: string, asking: string): boolean {
    const { hot, ram, disk } = this.tiers;
    if (ram.peek(id) !== undefined || disk?.has(id) === true) return true;
    if (id === asking) return false;
    return this.cellsShareable && (hot.peek(id) !== undefined || this.runningCells(id) !== undefined);
  }

  /** Agents whose cells are in the context: idle (hot) or with a request running. */
  private *inContext(): Iterable<string> {
    if (!this.cellsShareable) return;
    for (const entry of this.tiers.hot.entries()) yield entry.agentId;
    for (const sequence of this.active.values()) yield sequence.agentId;
  }

  private optionOf(id: string, asking: string, prompt: Int32Array, depth: number): Option | undefined {
    const { hot, ram } = this.tiers;
    if (id === asking) return undefined; // ownOption weighed it
    const entry = this.cellsShareable ? hot.peek(id) : undefined;
    if (entry !== undefined) {
      const { tokens, logits } = reusablePrefix(entry, prompt);
      return { kind: 'cells', from: 'hot', seqId: entry.seqId, tokens, logits, rank: RANK.hot };
    }
    const sequence = this.runningCells(id);
    if (sequence !== undefined) {
      const tokens = Math.min(runningPrefix(sequence, prompt), prompt.length - 1);
      return { kind: 'cells', from: 'active', seqId: sequence.seqId, tokens, rank: RANK.active };
    }
    const saved = ram.peek(id);
    if (saved !== undefined) return { kind: 'saved', from: 'ram', agentId: id, tokens: reusablePrefix(saved, prompt).tokens, rank: RANK.ram };
    if (this.tiers.disk?.has(id) !== true) return undefined;
    return { kind: 'saved', from: 'disk', agentId: id, tokens: this.indexedPrefix(id, prompt, depth), rank: RANK.disk };
  }

  /**
   * The agent's own saved state, which its usual restore path takes. A file whose tokens are not
   * indexed yet counts as the whole prompt: the agent's own history is never passed over for a
   * guess. That is a file whose header is still being read after a restart, or one that another
   * process sharing the cache dir wrote (a replica the agent was routed away from, another worker),
   * which this process has not indexed at all: a stat finds it.
   */
  private ownOption(agentId: string, prompt: Int32Array): Option | undefined {
    const own = this.tiers.ram.peek(agentId);
    if (own !== undefined) return { kind: 'own', tokens: reusablePrefix(own, prompt).tokens, rank: RANK.ram };
    const disk = this.tiers.disk;
    if (disk === undefined) return undefined;
    if (!disk.has(agentId)) return disk.mayHave(agentId) ? { kind: 'own', tokens: prompt.length, rank: RANK.disk } : undefined;
    const indexed = this.tiers.prefixes.has(agentId);
    const tokens = indexed ? commonPrefixLength(this.tiers.prefixes.tokensOf(agentId), prompt) : prompt.length;
    return { kind: 'own', tokens, rank: RANK.disk };
  }

  /** What a file is expected to share with the prompt, from the tokens indexed for it (checked once it is loaded). */
  private indexedPrefix(id: string, prompt: Int32Array, depth: number): number {
    return Math.min(Math.max(depth, commonPrefixLength(this.tiers.prefixes.tokensOf(id), prompt)), prompt.length - 1);
  }

  /** A running request whose cells hold tokens now (not one still waiting for its own import). */
  private runningCells(id: string): Sequence | undefined {
    if (!this.cellsShareable) return undefined;
    const sequence = runningSequenceOf(this.active.values(), id);
    return sequence !== undefined && sequence.phase !== 'restoring' && sequence.phase !== 'finished' && sequence.usedCells > 0 ? sequence : undefined;
  }
}

/** Common prefix of `prompt` and the tokens a running request's cells hold (its prompt, then its output). */
function runningPrefix(sequence: Sequence, prompt: Int32Array): number {
  const held = sequence.usedCells;
  const inPrompt = commonPrefixLength(sequence.prompt.subarray(0, Math.min(held, sequence.prompt.length)), prompt);
  if (inPrompt < sequence.prompt.length || held <= sequence.prompt.length) return inPrompt;
  const output = sequence.output.slice(0, held - sequence.prompt.length);
  return inPrompt + commonPrefixLength(output, prompt.subarray(inPrompt));
}
