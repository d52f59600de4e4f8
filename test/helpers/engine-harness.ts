/**
 * The engine on the fake addon (fake-addon.ts), for unit tests of the step loop: it keeps every
 * message the engine posts, in order, and lets a test wait for one (no sleeping: the wait is settled
 * by the post itself, bounded by tap's timeout).
 */
import { Engine } from '../../worker/engine/engine.js';
import type { EngineSettings } from '../../worker/engine/settings.js';
import type { DiskTier } from '../../worker/persistence/disk-tier.js';
import type { GenerateMessage, InferenceToFront } from '../../shared/protocol/messages.js';
import { FakeAddon, FakeContext, FakeModel, letterAt, type DecodedBatch } from './fake-addon.js';
import type { FakeDisk } from './fake-disk.js';

export const baseSettings: EngineSettings = {
  contextSize: 256,
  sequenceSize: 256,
  maxSequences: 4,
  batchTokens: 32,
  maxBatchTokens: 64,
  blockSize: 16,
  maxQueued: 8,
  maxQueuedTokens: 4096,
  maxQueuedPerAgent: 4,
  defaultMaxTokens: 16,
  ramBudgetBytes: 0,
  spillIdleOnStart: false,
};

/** A greedy text request. */
export function generate(requestId: string, agentId: string, prompt: string, maxTokens?: number, extra: Partial<GenerateMessage> = {}): GenerateMessage {
  return {
    type: 'generate',
    requestId,
    agentId,
    input: { kind: 'text', prompt },
    sampling: { temperature: 0, topP: 1, topK: 0, minP: 0, repeatPenalty: 1, frequencyPenalty: 0, presencePenalty: 0 },
    ...(maxTokens === undefined ? {} : { maxTokens }),
    stop: [],
    ...extra,
  };
}

/** The posted messages as compact lines, for asserting their order: `started r1 miss 0`, `tokens r1 "f"`, `done r1 length 5/3/0`. */
export function line(message: InferenceToFront): string {
  switch (message.type) {
    case 'started':
      return `started ${message.requestId} ${message.cacheTier} ${message.cachedTokens}${message.sharedFrom === undefined ? '' : ` from ${message.sharedFrom}`}`;
    case 'tokens':
      return `tokens ${message.requestId} ${JSON.stringify(message.text)}`;
    case 'done': {
      const { promptTokens, completionTokens, cachedTokens } = message.usage;
      return `done ${message.requestId} ${message.finishReason} ${promptTokens}/${completionTokens}/${cachedTokens}`;
    }
    case 'failed':
      return `failed ${message.requestId} ${message.error.code}`;
    case 'engine_dead':
      return `engine_dead ${message.error.code}`;
    case 'persisted':
      return `persisted ${message.agentId}`;
    default:
      return message.type;
  }
}

export class Harness {
  readonly addon: FakeAddon;
  readonly model: FakeModel;
  readonly context: FakeContext;
  readonly engine: Engine;
  readonly settings: EngineSettings;
  readonly posted: InferenceToFront[] = [];
  private waiters: { match: (message: InferenceToFront) => boolean; resolve: (message: InferenceToFront) => void }[] = [];

  constructor(settings: Partial<EngineSettings> = {}, options: { tokenAt?: (position: number) => number; disk?: FakeDisk } = {}) {
    this.settings = { ...baseSettings, ...settings };
    this.addon = new FakeAddon(options.tokenAt ?? letterAt);
    this.model = new FakeModel('fake.gguf', options.tokenAt ?? letterAt);
    const { contextSize: nCtx, maxSequences, maxBatchTokens: nBatch, scratchSeq } = this.settings;
    this.context = new FakeContext(this.model, { nCtx, nSeqMax: maxSequences + (scratchSeq === undefined ? 0 : 1), nBatch });
    this.engine = new Engine(this.addon, this.model, this.context, this.settings, (message) => this.receive(message), options.disk as unknown as DiskTier | undefined);
  }

  /** Every posted message as a line (see `line`). */
  get lines(): string[] {
    return this.posted.map(line);
  }

  /** Every decode call so far, in short (see `stepOf`). */
  get steps(): string[][] {
    return this.context.batches.map(stepOf);
  }

  /** The lines of one request's messages. */
  linesOf(requestId: string): string[] {
    return this.posted.filter((m) => 'requestId' in m && m.requestId === requestId).map(line);
  }

  /** The text one request streamed. */
  textOf(requestId: string): string {
    return this.posted.map((m) => (m.type === 'tokens' && m.requestId === requestId ? m.text : '')).join('');
  }

  /** Resolves with the first message (already posted or still to come) that matches. */
  waitFor(match: (message: InferenceToFront) => boolean): Promise<InferenceToFront> {
    const found = this.posted.find(match);
    if (found !== undefined) return Promise.resolve(found);
    return new Promise((resolve) => this.waiters.push({ match, resolve }));
  }

  /** The request's last message: done or failed. */
  ended(requestId: string): Promise<InferenceToFront> {
    return this.waitFor((m) => (m.type === 'done' || m.type === 'failed') && m.requestId === requestId);
  }

  /** Submits and waits for the request's end. */
  async run(request: GenerateMessage): Promise<InferenceToFront> {
    this.engine.submit(request);
    return this.ended(request.requestId);
  }

  private receive(message: InferenceToFront): void {
    this.posted.push(message);
    const now = this.waiters.filter((w) => w.match(message));
    this.waiters = this.waiters.filter((w) => !now.includes(w));
    for (const waiter of now) waiter.resolve(message);
  }
}

/**
 * A decode call in short: per run of one sequence's consecutive positions, `seq:text@first`, with `!`
 * after each token whose logits were asked for, and ` FAILED code` when the call failed. Step 2 of
 * a chunked prefill beside a new prompt reads `['0:ijkl!@8', '1:vwxy@0']`.
 */
export function stepOf(batch: DecodedBatch): string[] {
  const runs: string[] = [];
  let run: { seq: number; next: number; text: string; first: number } | undefined;
  const flush = (): void => void (run !== undefined && runs.push(`${run.seq}:${run.text}@${run.first}`));
  batch.tokens.forEach((token, i) => {
    const seq = batch.seqIds[i] as number;
    const position = batch.positions[i] as number;
    if (run === undefined || run.seq !== seq || run.next !== position) {
      flush();
      run = { seq, next: position, text: '', first: position };
    }
    run.text += String.fromCharCode(token) + (batch.logits[i] === 1 ? '!' : '');
    run.next++;
  });
  flush();
  return batch.failed === undefined ? runs : [...runs, `FAILED ${batch.failed}`];
}
