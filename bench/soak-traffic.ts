/**
 * The soak's clients: a mix of named agents coming back (recent ones, likely still in a worker's
 * context or RAM tier, and old ones, likely only on disk), new agents and stateless requests, over
 * both API families, some streamed, through node:http with keep-alive like an SDK. Bursts over
 * `--max-queued` provoke 429s on purpose; a 429 while a burst is in flight is counted as provoked,
 * any other 429, any 5xx, other 4xx, reset or timeout as a failure.
 */
import { Agent, request } from 'node:http';

export type RequestKind = 'returning' | 'new' | 'stateless' | 'burst';

export interface TrafficTally {
  /** Per kind: answered 200, failed, and 429s provoked by a burst. */
  byKind: Record<RequestKind, { ok: number; failed: number; provoked429: number }>;
  /** `X-Semantic-Cache` of the 200s: where the reused tokens came from (hot, ram, disk, shared, miss). */
  tiers: Record<string, number>;
  /** The first failures, with what was sent and what came back. */
  failures: { atSeconds: number; kind: RequestKind; what: string }[];
  bursts: number;
}

const keptFailures = 50;
/** Far longer than any soak request takes (at most 32 tokens); a request that takes longer has hung. */
const requestTimeoutMs = 120_000;

interface Answer {
  status: number;
  tier: string | undefined;
  body: string;
}

export class SoakTraffic {
  readonly tally: TrafficTally = {
    byKind: { returning: zero(), new: zero(), stateless: zero(), burst: zero() },
    tiers: {},
    failures: [],
    bursts: 0,
  };
  /** Named agents that have had a turn, oldest first. */
  private readonly known: string[] = [];
  private newAgents = 0;
  private burstsInFlight = 0;
  private readonly agent = new Agent({ keepAlive: true });

  constructor(
    private readonly url: string,
    private readonly startedAt: number,
    private readonly runId: string,
  ) {}

  /**
   * One client: sends requests one after another until `running()` turns false, each at least
   * `intervalMs` after the previous one started (0: back to back). A client that falls behind does
   * not catch up in a rush: its next request is due one interval after the late one.
   */
  async client(running: () => boolean, intervalMs = 0): Promise<void> {
    let due = performance.now();
    while (running()) {
      const wait = due - performance.now();
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      due = Math.max(due, performance.now()) + intervalMs;
      if (!running()) break;
      const roll = Math.random();
      if (roll < 0.2 || this.known.length < 8) await this.turn('new', this.nextNewAgent());
      else if (roll < 0.75) await this.turn('returning', this.returningAgent());
      else await this.turn('stateless', undefined);
    }
  }

  /**
   * `size` concurrent stateless requests, more than the workers can run and queue together: the
   * surplus must be answered 429 at once.
   */
  async burst(size: number): Promise<void> {
    this.tally.bursts++;
    this.burstsInFlight++;
    try {
      await Promise.all(Array.from({ length: size }, () => this.send('burst', undefined, 32)));
    } finally {
      this.burstsInFlight--;
    }
  }

  /** Requests answered 200 so far, every kind. */
  answered(): number {
    return Object.values(this.tally.byKind).reduce((sum, counts) => sum + counts.ok, 0);
  }

  close(): void {
    this.agent.destroy();
  }

  private nextNewAgent(): string {
    return `soak-${this.runId}-${this.newAgents++}`;
  }

  /** Half the time one of the 8 most recent (hot or RAM), else any known agent (often only on disk). */
  private returningAgent(): string {
    const recent = Math.random() < 0.5;
    const from = recent ? Math.max(0, this.known.length - 8) : 0;
    return this.known[from + Math.floor(Math.random() * (this.known.length - from))]!;
  }

  private async turn(kind: RequestKind, agentId: string | undefined): Promise<void> {
    await this.send(kind, agentId, 4 + Math.floor(Math.random() * 12));
    if (kind === 'new' && agentId !== undefined) this.known.push(agentId);
  }

  private async send(kind: RequestKind, agentId: string | undefined, maxTokens: number): Promise<void> {
    const anthropic = Math.random() < 0.25;
    const stream = Math.random() < 0.25;
    const { path, body } = requestBody(anthropic, agentId ?? `anon ${Math.random()}`, maxTokens, stream);
    const headers: Record<string, string> = { 'content-type': 'application/json', ...(agentId === undefined ? {} : { 'x-agent-id': agentId }) };
    const outcome = await this.post(path, headers, body).catch((error: Error) => error);
    this.record(kind, outcome, `${path} ${agentId ?? '(stateless)'} stream=${stream}`, stream, anthropic);
  }

  private record(kind: RequestKind, outcome: Answer | Error, what: string, stream: boolean, anthropic: boolean): void {
    const counts = this.tally.byKind[kind];
    if (!(outcome instanceof Error) && outcome.status === 200 && (!stream || streamEnded(outcome.body, anthropic))) {
      counts.ok++;
      const tier = outcome.tier ?? 'none';
      this.tally.tiers[tier] = (this.tally.tiers[tier] ?? 0) + 1;
      return;
    }
    if (!(outcome instanceof Error) && outcome.status === 429 && (kind === 'burst' || this.burstsInFlight > 0)) {
      counts.provoked429++;
      return;
    }
    counts.failed++;
    const answer = outcome instanceof Error ? `error: ${outcome.message}` : `${outcome.status}: ${outcome.body.slice(0, 200)}`;
    if (this.tally.failures.length < keptFailures) this.tally.failures.push({ atSeconds: Math.round((Date.now() - this.startedAt) / 1000), kind, what: `${what} → ${answer}` });
  }

  private post(path: string, headers: Record<string, string>, body: string): Promise<Answer> {
    return new Promise((resolve, reject) => {
      const outgoing = request(this.url + path, { method: 'POST', headers, agent: this.agent, timeout: requestTimeoutMs }, (response) => {
        let text = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => (text += chunk));
        response.on('end', () => resolve({ status: response.statusCode ?? 0, tier: header(response.headers['x-semantic-cache']), body: text }));
        response.on('error', reject);
        response.on('close', () => !response.complete && reject(new Error('response cut short')));
      });
      outgoing.on('timeout', () => outgoing.destroy(new Error(`no answer within ${requestTimeoutMs} ms`)));
      outgoing.on('error', reject);
      outgoing.end(body);
    });
  }
}

function zero(): { ok: number; failed: number; provoked429: number } {
  return { ok: 0, failed: 0, provoked429: 0 };
}

const header = (value: string | string[] | undefined): string | undefined => (Array.isArray(value) ? value[0] : value);

/** A stream is whole when its last event is the family's end: `[DONE]` or `message_stop`. */
function streamEnded(body: string, anthropic: boolean): boolean {
  return anthropic ? body.includes('event: message_stop') : body.trimEnd().endsWith('data: [DONE]');
}

/**
 * A system prompt of about 100 tokens that names the agent throughout, so each agent's cache is its
 * own, then a short new user turn: a returning agent reuses the system prompt from whichever tier holds it.
 */
function requestBody(anthropic: boolean, who: string, maxTokens: number, stream: boolean): { path: string; body: string } {
  const system = Array.from({ length: 8 }, (_, i) => `${who} keeps note ${i} of the soak test in mind.`).join(' ');
  const user = `Turn ${Math.floor(Math.random() * 1e6)}: what next?`;
  if (anthropic) {
    return { path: '/v1/messages', body: JSON.stringify({ model: 'tiny', system, messages: [{ role: 'user', content: user }], max_tokens: maxTokens, temperature: 0, stream }) };
  }
  const messages = [
    { role: 'system', content: system },
    { role: 'user', content: user },
  ];
  return { path: '/v1/chat/completions', body: JSON.stringify({ model: 'tiny', messages, max_tokens: maxTokens, temperature: 0, stream }) };
}
