/**
 * The workloads of bench/vs-llama-server.ts: what each measures on one server and the table rows it
 * makes from both servers' results. `size` is set from `--quick` before any runs.
 */
import { chat, settings, stream, warmUp, words, type Message, type Streamed, type Target, type Turn } from './vs-llama-server-targets.js';

/** The workloads' sizes: `--quick` for a fast look, `full` for the recorded results. */
export const sizes = {
  quick: {
    cold: [256, 1024],
    coldPrompts: 3,
    returns: 7,
    decodeTokens: 32,
    streams: [1, 4],
    hot: 512,
    ram: 256,
    restart: 512,
    shared: [256, 1024],
    agents: 4,
    prefix: 2000,
    sessions: 3,
    turns: 3,
    reply: 8,
  },
  full: {
    cold: [1024, 4096],
    coldPrompts: 2,
    returns: 7,
    decodeTokens: 128,
    streams: [1, 4],
    hot: 2048,
    ram: 1024,
    restart: 4096,
    shared: [1024, 8192],
    agents: 4,
    prefix: 15000,
    sessions: 3,
    turns: 5,
    reply: 16,
  },
};
export const size = { ...sizes.full };

/** What one workload measured on one server: named numbers (and a few labels, such as cache tiers). */
export type Measured = Record<string, number | string>;

/** A row of the table: ours ÷ theirs against a target (`≥` where higher is better); `absolute`: the target bounds ours itself. */
export interface Row {
  workload: string;
  metric: string;
  ours: number;
  theirs: number;
  unit: string;
  target: { op: '≥' | '≤'; ratio: number; absolute?: boolean };
  note: string;
}

interface Workload {
  name: string;
  run(target: Target): Promise<Measured>;
  rows(ours: Measured, theirs: Measured): Row[];
}

const user = (content: string): Message[] => [{ role: 'user', content }];
const medianTurn = (turns: Turn[]): Turn => [...turns].sort((a, b) => a.ms - b.ms)[Math.floor(turns.length / 2)] as Turn;
const mean = (xs: number[]): number => xs.reduce((s, x) => s + x, 0) / xs.length;
const num = (m: Measured, key: string): number => Number(m[key]);
/** The part of a request spent decoding, as each server counts it. */
const engine = (ours: Measured, theirs: Measured, key: string): string => `in decode ${num(ours, key).toFixed(0)} / ${num(theirs, key).toFixed(0)} ms`;
const ttftRow = (workload: string, metric: string, ours: Measured, theirs: Measured, key: string, ratio = 1, note = ''): Row => ({
  workload,
  metric,
  ours: num(ours, key),
  theirs: num(theirs, key),
  unit: 'ms',
  target: { op: '≤', ratio },
  note,
});

/**
 * Cold prefill of several distinct prompts of each size, each a new agent: tokens over time summed
 * over all of them, since one prompt's time swings by ±20 % on a shared machine.
 */
const cold: Workload = {
  name: 'cold',
  async run(target) {
    const out: Measured = {};
    for (const n of size.cold) {
      const turns: Turn[] = [];
      for (let i = 0; i < size.coldPrompts; i++) turns.push(await chat(target, `cold-${n}-${i}`, user(words(n, `cold-${n}-${i}`))));
      const tokens = turns.reduce((s, t) => s + t.promptTokens, 0);
      const ms = turns.reduce((s, t) => s + t.ms, 0);
      Object.assign(out, { [`tps${n}`]: tokens / (ms / 1000), [`ms${n}`]: ms, [`tokens${n}`]: tokens, [`computed${n}`]: turns.reduce((s, t) => s + t.computed, 0) });
    }
    return out;
  },
  rows: (ours, theirs) =>
    size.cold.map((n) => ({
      workload: 'cold prefill',
      metric: `${size.coldPrompts} new agents × ~${n}-token prompt (${num(ours, `tokens${n}`)} / ${num(theirs, `tokens${n}`)} tokens in all)`,
      ours: num(ours, `tps${n}`),
      theirs: num(theirs, `tps${n}`),
      unit: 'tok/s',
      target: { op: '≥', ratio: 1 },
      note: `computed ${num(ours, `computed${n}`)} / ${num(theirs, `computed${n}`)}`,
    })),
};

/**
 * N concurrent greedy streams, measured in steady state: the tokens all streams received while every
 * one of them was decoding (from the last stream's first token to the first stream's end), over that
 * window. Streams that arrive together may start a step apart (a server admits what has arrived when
 * a step begins), and the prompt of a later one is then prefilled while the first decodes: that is
 * prefill, measured by the cold and TTFT rows, not decode. A chunk is weighted by its stream's tokens
 * per chunk, in case a server joins tokens into one chunk. Raw completions, not chat: see StreamRoute.
 */
async function decodeRate(target: Target, streams: number): Promise<{ rate: number; tokens: number; cut: number }> {
  const origin = performance.now();
  const runs = await Promise.all(
    Array.from({ length: streams }, (_, i) =>
      stream(target, `decode-${streams}-${i}`, `Agent ${i} of ${streams}: ${words(24, `decode-${streams}-${i}`)}`, size.decodeTokens, origin, 'completions'),
    ),
  );
  const from = Math.max(...runs.map((r) => r.first));
  const to = Math.min(...runs.map((r) => r.chunks.at(-1) ?? NaN));
  // A stream that ended without its usage chunk was cut by the server (llama-server v0.4.0 sometimes
  // closes one of four streams early although its log shows every token decoded): its chunks count
  // as its tokens, and the window ends at its last one.
  const tokensOf = (r: Streamed): number => (Number.isNaN(r.tokens) ? r.chunks.length : r.tokens);
  const inWindow = runs.reduce((sum, r) => sum + (r.chunks.filter((t) => t > from && t <= to).length * tokensOf(r)) / r.chunks.length, 0);
  const cut = runs.filter((r) => Number.isNaN(r.tokens)).length;
  return { rate: (inWindow * 1000) / (to - from), tokens: runs.reduce((s, r) => s + tokensOf(r), 0), cut };
}

const decode: Workload = {
  name: 'decode',
  async run(target) {
    const out: Measured = {};
    for (const n of size.streams) {
      const { rate, tokens, cut } = await decodeRate(target, n);
      Object.assign(out, { [`rate${n}`]: rate, [`tokens${n}`]: tokens, [`cut${n}`]: cut });
    }
    return out;
  },
  rows: (ours, theirs) =>
    size.streams.map((n) => ({
      workload: 'decode',
      metric: `${n} stream${n > 1 ? 's' : ''} × ${size.decodeTokens} tokens, aggregate`,
      ours: num(ours, `rate${n}`),
      theirs: num(theirs, `rate${n}`),
      unit: 'tok/s',
      target: { op: '≥', ratio: 1 },
      note: `generated ${num(ours, `tokens${n}`)} / ${num(theirs, `tokens${n}`)}${cutNote(ours, theirs, n)}`,
    })),
};

/** Streams a server ended early, when any did (counted in the window up to their last token). */
const cutNote = (ours: Measured, theirs: Measured, n: number): string =>
  num(ours, `cut${n}`) + num(theirs, `cut${n}`) > 0 ? `; streams cut short ${num(ours, `cut${n}`)} / ${num(theirs, `cut${n}`)}` : '';

/** The same agent's next turn: its history plus a new message. */
const next = (history: string, k: number | string): Message[] => user(`${history} And one more question, number ${k}?`);
const tierNote = (ours: Measured, theirs: Measured, key = ''): string =>
  `Semantic tier ${ours[`tier${key}`]}; computed ${num(ours, `computed${key}`)} / ${num(theirs, `computed${key}`)}, ${engine(ours, theirs, `engine${key}`)}`;
const turnFields = (turn: Turn, key = ''): Measured => ({ [`ms${key}`]: turn.ms, [`tier${key}`]: turn.tier, [`computed${key}`]: turn.computed, [`engine${key}`]: turn.engineMs });

const hot: Workload = {
  name: 'hot',
  async run(target) {
    const history = words(size.hot, 'hot');
    await chat(target, 'hot', user(history));
    const turns: Turn[] = [];
    for (let k = 1; k <= size.returns; k++) turns.push(await chat(target, 'hot', next(history, k)));
    return turnFields(medianTurn(turns));
  },
  rows: (ours, theirs) => [
    ttftRow('returning agent', `from hot, ~${size.hot}-token history + a new message (median of ${size.returns})`, ours, theirs, 'ms', 1, tierNote(ours, theirs)),
  ],
};

const ram: Workload = {
  name: 'ram',
  async run(target) {
    const histories = Array.from({ length: 2 * settings.sequences }, (_, i) => words(size.ram, `ram-${i}`));
    for (const [i, history] of histories.entries()) await chat(target, `ram-${i}`, user(history));
    // Agents return in the order they came, each then the least recently used: out of the slots, in host memory.
    const turns: Turn[] = [];
    for (let i = 0; i < size.returns; i++) turns.push(await chat(target, `ram-${i}`, next(histories[i] ?? '', 1)));
    return { ...turnFields(medianTurn(turns)), tiers: turns.map((t) => t.tier).join(',') };
  },
  rows: (ours, theirs) => [
    ttftRow(
      'returning agent',
      `from RAM: ${2 * settings.sequences} agents × ~${size.ram} tokens, then the first ${size.returns} return (median)`,
      ours,
      theirs,
      'ms',
      1,
      `Semantic tiers ${ours.tiers}; computed ${num(ours, 'computed')} / ${num(theirs, 'computed')}, ${engine(ours, theirs, 'engine')}`,
    ),
  ],
};

const restart: Workload = {
  name: 'restart',
  async run(target) {
    const history = words(size.restart, 'restart');
    const first = await chat(target, 'restart', user(history));
    await target.restart();
    await warmUp(target);
    return { ...turnFields(await chat(target, 'restart', next(history, 1))), coldMs: first.ms };
  },
  rows: (ours, theirs) => [
    ttftRow(
      'returning agent',
      `after a restart, ~${size.restart}-token history + a new message`,
      ours,
      theirs,
      'ms',
      1 / 15,
      `${(num(theirs, 'ms') / num(ours, 'ms')).toFixed(1)}× faster; ${tierNote(ours, theirs)}`,
    ),
  ],
};

const shared: Workload = {
  name: 'shared',
  async run(target) {
    const out: Measured = {};
    for (const n of size.shared) {
      const system = words(n, `shared-${n}`);
      const turns: Turn[] = [];
      for (let i = 0; i < size.agents; i++) {
        turns.push(await chat(target, `shared-${n}-${i}`, [{ role: 'system', content: system }, ...user(words(16, `shared-${n}-user-${i}`))]));
      }
      const rest = turns.slice(1);
      Object.assign(out, {
        [`first${n}`]: turns[0]?.ms ?? NaN,
        [`rest${n}`]: mean(rest.map((t) => t.ms)),
        [`computed${n}`]: mean(rest.map((t) => t.computed)),
        [`engine${n}`]: mean(rest.map((t) => t.engineMs)),
      });
    }
    return out;
  },
  rows: (ours, theirs) =>
    size.shared.map((n) =>
      ttftRow(
        'new agents, shared system prompt',
        `~${n}-token system prompt: mean TTFT of agents 2..${size.agents}`,
        ours,
        theirs,
        `rest${n}`,
        1,
        `agent 1: ${num(ours, `first${n}`).toFixed(0)} / ${num(theirs, `first${n}`).toFixed(0)} ms; computed each ${num(ours, `computed${n}`).toFixed(0)} / ${num(theirs, `computed${n}`).toFixed(0)}, ${engine(ours, theirs, `engine${n}`)}`,
      ),
    ),
};

/** A coding agent's fixed prefix: instructions, then tool definitions as JSON (~half each). */
function codingPrefix(tokens: number): string {
  const tools = Array.from({ length: Math.round(tokens / 2 / 90) }, (_, i) => ({
    name: `tool_${i}`,
    description: words(50, `tool-${i}`),
    parameters: { type: 'object', properties: { path: { type: 'string', description: words(8, `tool-arg-${i}`) } }, required: ['path'] },
  }));
  return `${words(tokens / 2, 'instructions')}\n\n# Tools\n${JSON.stringify(tools, null, 1)}`;
}

/** Tokens of a chat as the server counts them, without running it (Anthropic count_tokens: both servers have it). */
async function countTokens(target: Target, system: string): Promise<number> {
  const response = await fetch(`${target.url}/v1/messages/count_tokens`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'bench', system, messages: [{ role: 'user', content: 'x' }] }),
  });
  return ((await response.json()) as { input_tokens: number }).input_tokens;
}

/** A coding prefix of about `tokens` tokens as the server counts them (JSON tool lists take more tokens per word than prose). */
async function calibratedPrefix(target: Target, tokens: number): Promise<string> {
  let asked = tokens;
  let prefix = codingPrefix(asked);
  for (let i = 0; i < 3; i++) {
    const counted = await countTokens(target, prefix);
    if (Math.abs(counted - tokens) <= tokens * 0.02) break;
    asked = Math.round((asked * tokens) / counted);
    prefix = codingPrefix(asked);
  }
  return prefix;
}

/**
 * Coding-agent sessions on one long prefix, turn by turn across sessions. A session's first turn is
 * sent twice: once for exactly one token, timed whole (its time to first token, as everywhere in this
 * bench), then as the real turn of `reply` tokens, which finds the whole prompt cached on both servers
 * (llama-server recomputes its last token). Both requests' computed tokens count.
 */
const coding: Workload = {
  name: 'coding',
  async run(target) {
    const prefix = await calibratedPrefix(target, size.prefix);
    const sessions = Array.from({ length: size.sessions }, (_, s): Message[] => [{ role: 'system', content: prefix }, ...user(words(30, `coding-${s}-0`))]);
    const turns: Turn[][] = sessions.map(() => []);
    const firsts: Turn[] = [];
    for (let t = 0; t < size.turns; t++) {
      for (const [s, messages] of sessions.entries()) {
        if (t === 0) firsts.push(await chat(target, `coding-${s}`, messages, 1));
        const turn = await chat(target, `coding-${s}`, messages, size.reply);
        turns[s]?.push(turn);
        messages.push({ role: 'assistant', content: turn.content }, ...user(words(30, `coding-${s}-${t + 1}`)));
      }
    }
    // Unique tokens across sessions: the shared prefix once, plus each session's own tail (to within the few template tokens after it).
    const prefixTokens = await countTokens(target, prefix);
    const last = turns.map((ts) => ts.at(-1)?.promptTokens ?? NaN);
    const unique = prefixTokens + last.reduce((s, n) => s + n - prefixTokens, 0);
    const computed = [...firsts, ...turns.flat()].reduce((s, t) => s + t.computed, 0);
    const perSession = (s: number): [string, number][] => [
      [`first${s}`, firsts[s]?.ms ?? NaN],
      [`firstComputed${s}`, firsts[s]?.computed ?? NaN],
      [`firstEngine${s}`, firsts[s]?.engineMs ?? NaN],
      [`turn${s}`, turns[s]?.[0]?.ms ?? NaN],
      [`turnGenerated${s}`, turns[s]?.[0]?.completionTokens ?? NaN],
      [`turnEngine${s}`, turns[s]?.[0]?.engineMs ?? NaN],
    ];
    return { prefixTokens, unique, computed, ratio: computed / unique, ...Object.fromEntries(sessions.flatMap((_, s) => perSession(s))) };
  },
  rows: (ours, theirs) => [
    {
      workload: 'coding agents',
      metric: `~${size.prefix}-token prefix, ${size.sessions} sessions × ${size.turns} turns: prompt tokens computed ÷ unique`,
      ours: num(ours, 'ratio'),
      theirs: num(theirs, 'ratio'),
      unit: '×',
      target: { op: '≤', ratio: 1.1, absolute: true },
      note: `computed ${num(ours, 'computed')} / ${num(theirs, 'computed')} of unique ${num(ours, 'unique')} / ${num(theirs, 'unique')} (prefix ${num(ours, 'prefixTokens')})`,
    },
    ...Array.from({ length: size.sessions - 1 }, (_, i) =>
      ttftRow(
        'coding agents',
        `first TTFT of session ${i + 2}`,
        ours,
        theirs,
        `first${i + 1}`,
        1,
        `computed ${num(ours, `firstComputed${i + 1}`)} / ${num(theirs, `firstComputed${i + 1}`)}, ${engine(ours, theirs, `firstEngine${i + 1}`)}; session 1: ${num(ours, 'first0').toFixed(0)} / ${num(theirs, 'first0').toFixed(0)} ms`,
      ),
    ),
    ...Array.from({ length: size.sessions - 1 }, (_, i) => ({
      ...ttftRow(
        'coding agents',
        `session ${i + 2}'s first turn, ${size.reply} tokens, after its TTFT request`,
        ours,
        theirs,
        `turn${i + 1}`,
        1,
        `generated ${num(ours, `turnGenerated${i + 1}`)} / ${num(theirs, `turnGenerated${i + 1}`)}, ${engine(ours, theirs, `turnEngine${i + 1}`)}`,
      ),
    })),
  ],
};

// The restart workload restarts the server, so it runs last whatever the order asked for.

export const allWorkloads = [cold, decode, hot, ram, shared, coding, restart];
