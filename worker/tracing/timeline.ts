/**
 * Tracing on the inference thread: a traced request's moments (stamped once, for the metrics too, by
 * worker/engine/request-clock.ts) become span records at its end, sent to the front, which makes them
 * into OpenTelemetry spans (thread-spans.ts). No OpenTelemetry code is loaded on this thread; an
 * untraced request (tracing off, or not sampled) carries no carrier and emits nothing.
 *
 *   request span (front) ── chat {model} (front) ─┬─ queue wait    submitted → turn taken up
 *                                                  ├─ admission     turn taken → admitted (FIFO wait included)
 *                                                  ├─ restore       admitted → state imported (RAM or disk)
 *                                                  ├─ prefill       admitted or restored → first token
 *                                                  ├─ decode        first token → end
 *                                                  └─ persist       the turn's cache file, on a piscina thread
 */
import type { CacheTier, FinishReason, ThreadSpan, TraceCarrier, Usage } from '../../shared/protocol/messages.js';

/** Wall-clock milliseconds with sub-millisecond precision, comparable across a process's threads. */
export function epochMs(): number {
  return performance.timeOrigin + performance.now();
}

/** One request's moments on the inference thread, as `epochMs()`; `parent` only when it is traced. */
export interface Moments {
  parent: TraceCarrier | undefined;
  submitted: number;
  taken?: number;
  queued?: boolean;
  admitted?: number;
  restoreTier?: 'ram' | 'disk';
  started?: number;
  cacheTier?: CacheTier;
  /** The first token sampled, an end token included: where prefill ends. */
  firstSampled?: number;
  /** The first and the latest token the client receives (end tokens are not): TTFT and inter-token latency. */
  firstEmitted?: number;
  lastEmitted?: number;
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
  /** The trace of each agent's latest turn not yet in its cache file: its write joins that trace. */
  private readonly unwritten = new Map<string, TraceCarrier>();

  constructor(private readonly emit: (spans: ThreadSpan[]) => void) {}

  /** A traced request ended: its phases go to the front as spans. */
  end(moments: Moments, outcome: TimelineEnd): void {
    if (moments.parent !== undefined) this.emit(phaseSpans(moments, moments.parent, outcome, epochMs()));
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
function phaseSpans(t: Moments, parent: TraceCarrier, outcome: TimelineEnd, now: number): ThreadSpan[] {
  const span = (name: string, startMs: number, endMs: number, attributes: ThreadSpan['attributes'] = {}): ThreadSpan => ({ name, parent, startMs, endMs, attributes });
  const spans = [span('queue wait', t.submitted, t.taken ?? now)];
  if (t.taken !== undefined) spans.push(span('admission', t.taken, t.admitted ?? now, { 'semantic.admission.queued': t.queued === true }));
  if (t.admitted === undefined) return spans;
  const prefillFrom = t.restoreTier === undefined ? t.admitted : (t.started ?? now);
  if (t.restoreTier !== undefined)
    spans.push(span('restore', t.admitted, prefillFrom, { 'semantic.cache.tier': t.restoreTier, 'semantic.cache.restored': t.cacheTier !== 'miss' }));
  if (t.started === undefined) return spans;
  const usage = 'usage' in outcome ? outcome.usage : undefined;
  const computed: ThreadSpan['attributes'] = usage === undefined ? {} : { 'semantic.prefill.computed_tokens': usage.promptTokens - usage.cachedTokens };
  spans.push(span('prefill', prefillFrom, t.firstSampled ?? now, { 'semantic.cache.tier': t.cacheTier ?? 'miss', ...computed }));
  if (t.firstSampled !== undefined) spans.push(span('decode', t.firstSampled, now, usage === undefined ? {} : { 'gen_ai.usage.output_tokens': usage.completionTokens }));
  return spans;
}
