/**
 * Tracing on the inference thread: a traced request's phase changes are stamped here and sent to the
 * front as span records, which the front makes into OpenTelemetry spans (thread-spans.ts). No
 * OpenTelemetry code is loaded on this thread: the step loop pays one Map lookup per phase change of
 * a traced request (a handful per request) and nothing per decode step; an untraced request (tracing
 * off, or not sampled) carries no carrier and is never entered.
 *
 *   request span (front) ── chat {model} (front) ─┬─ queue wait    submitted → turn taken up
 *                                                  ├─ admission     turn taken → admitted (FIFO wait included)
 *                                                  ├─ restore       admitted → state imported (RAM or disk)
 *                                                  ├─ prefill       admitted or restored → first token
 *                                                  ├─ decode        first token → end
 *                                                  └─ persist       the turn's cache file, on a piscina thread
 */
import type { CacheTier, FinishReason, GenerateMessage, ThreadSpan, TraceCarrier, Usage } from '../../shared/protocol/messages.js';

/** Wall-clock milliseconds with sub-millisecond precision, comparable across a process's threads. */
export function epochMs(): number {
  return performance.timeOrigin + performance.now();
}

interface Timeline {
  parent: TraceCarrier;
  submitted: number;
  taken?: number;
  queued?: boolean;
  admitted?: number;
  restoreTier?: 'ram' | 'disk';
  started?: number;
  cacheTier?: CacheTier;
  firstToken?: number;
}

/** What a traced request ended with: `done`'s reason and usage, or `failed`'s code. */
export type TimelineEnd = { finishReason: FinishReason; usage: Usage } | { error: string };

/** A traced write's time on its piscina thread (cache-task.ts). */
export interface WriteRun {
  startMs: number;
  endMs: number;
}

/** How the disk tier learns which trace a write belongs to, and reports it (disk-tier.ts). */
export interface WriteTracing {
  takeWriteTrace(agentId: string): TraceCarrier | undefined;
  written(agentId: string, parent: TraceCarrier, queuedAt: number, run: WriteRun, bytes: number): void;
}

/** Unwritten traced turns remembered at most: an agent whose turn is never written must not grow the map. */
const MAX_UNWRITTEN = 4096;

export class RequestTimelines implements WriteTracing {
  private readonly open = new Map<string, Timeline>();
  /** The trace of each agent's latest turn not yet in its cache file: its write joins that trace. */
  private readonly unwritten = new Map<string, TraceCarrier>();

  constructor(private readonly emit: (spans: ThreadSpan[]) => void) {}

  submitted(request: GenerateMessage): void {
    if (request.trace !== undefined) this.open.set(request.requestId, { parent: request.trace, submitted: epochMs() });
  }

  /** Its turn was taken up at a step boundary: tokenized, then admitted, queued or refused. */
  taken(requestId: string): void {
    const timeline = this.open.get(requestId);
    if (timeline !== undefined) timeline.taken ??= epochMs();
  }

  queued(requestId: string): void {
    const timeline = this.open.get(requestId);
    if (timeline !== undefined) timeline.queued = true;
  }

  /** It holds a sequence; `restoreTier`: its saved state is imported from that tier before prefill. */
  admitted(requestId: string, restoreTier?: 'ram' | 'disk'): void {
    const timeline = this.open.get(requestId);
    if (timeline === undefined) return;
    timeline.admitted = epochMs();
    if (restoreTier !== undefined) timeline.restoreTier = restoreTier;
  }

  /** `started` was posted: its cached prefix is in place and prefill begins. */
  started(requestId: string, cacheTier: CacheTier): void {
    const timeline = this.open.get(requestId);
    if (timeline === undefined) return;
    timeline.started = epochMs();
    timeline.cacheTier = cacheTier;
  }

  firstToken(requestId: string): void {
    const timeline = this.open.get(requestId);
    if (timeline !== undefined) timeline.firstToken ??= epochMs();
  }

  /** The request ended: its phases go to the front as spans. */
  end(requestId: string, outcome: TimelineEnd): void {
    const timeline = this.open.get(requestId);
    if (timeline === undefined) return;
    this.open.delete(requestId);
    this.emit(phaseSpans(timeline, outcome, epochMs()));
  }

  /** A finished turn was parked: a later write of the agent's cache file belongs to this request's trace (or to none). */
  turnParked(agentId: string, trace: TraceCarrier | undefined): void {
    this.unwritten.delete(agentId);
    if (trace === undefined) return;
    this.unwritten.set(agentId, trace);
    if (this.unwritten.size > MAX_UNWRITTEN) this.unwritten.delete(this.unwritten.keys().next().value as string);
  }

  takeWriteTrace(agentId: string): TraceCarrier | undefined {
    const trace = this.unwritten.get(agentId);
    this.unwritten.delete(agentId);
    return trace;
  }

  written(agentId: string, parent: TraceCarrier, queuedAt: number, run: WriteRun, bytes: number): void {
    const attributes = { 'gen_ai.agent.id': agentId, 'semantic.persist.bytes': bytes, 'semantic.persist.queued_ms': Math.max(0, run.startMs - queuedAt) };
    this.emit([{ name: 'persist', parent, startMs: run.startMs, endMs: run.endMs, attributes }]);
  }
}

/** The phases a request went through, each ending where the next begins; one it never reached is left out. */
function phaseSpans(t: Timeline, outcome: TimelineEnd, now: number): ThreadSpan[] {
  const span = (name: string, startMs: number, endMs: number, attributes: ThreadSpan['attributes'] = {}): ThreadSpan => ({ name, parent: t.parent, startMs, endMs, attributes });
  const spans = [span('queue wait', t.submitted, t.taken ?? now)];
  if (t.taken !== undefined) spans.push(span('admission', t.taken, t.admitted ?? now, { 'semantic.admission.queued': t.queued === true }));
  if (t.admitted === undefined) return spans;
  const prefillFrom = t.restoreTier === undefined ? t.admitted : (t.started ?? now);
  if (t.restoreTier !== undefined)
    spans.push(span('restore', t.admitted, prefillFrom, { 'semantic.cache.tier': t.restoreTier, 'semantic.cache.restored': t.cacheTier !== 'miss' }));
  if (t.started === undefined) return spans;
  const usage = 'usage' in outcome ? outcome.usage : undefined;
  const computed: ThreadSpan['attributes'] = usage === undefined ? {} : { 'semantic.prefill.computed_tokens': usage.promptTokens - usage.cachedTokens };
  spans.push(span('prefill', prefillFrom, t.firstToken ?? now, { 'semantic.cache.tier': t.cacheTier ?? 'miss', ...computed }));
  if (t.firstToken !== undefined) spans.push(span('decode', t.firstToken, now, usage === undefined ? {} : { 'gen_ai.usage.output_tokens': usage.completionTokens }));
  return spans;
}
