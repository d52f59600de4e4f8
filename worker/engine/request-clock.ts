/**
 * Each request's moments on the inference thread, stamped once where they happen and read by both
 * observers: the metrics' latencies (queue, TTFT, prefill, inter-token, decode, e2e) as they occur,
 * and a traced request's phase spans at its end (worker/tracing/timeline.ts). One record per request
 * in flight, one clock (`epochMs()`: the thread's monotonic clock, comparable across threads).
 */
import type { CacheTier, FinishReason, GenerateMessage, Usage } from '../../shared/protocol/messages.js';
import { epochMs, type Moments, type RequestTimelines } from '../tracing/timeline.js';
import { seconds, type EngineMetrics } from './metrics.js';

export class RequestClock {
  private readonly open = new Map<string, Moments>();

  constructor(
    private readonly metrics: EngineMetrics,
    private readonly timelines: RequestTimelines,
  ) {}

  submitted(request: GenerateMessage): void {
    this.open.set(request.requestId, { parent: request.trace, submitted: epochMs() });
  }

  /** Its turn was taken up at a step boundary: tokenized, then admitted, queued or refused. */
  taken(requestId: string): void {
    const moments = this.open.get(requestId);
    if (moments !== undefined) moments.taken ??= epochMs();
  }

  queued(requestId: string): void {
    const moments = this.open.get(requestId);
    if (moments !== undefined) moments.queued = true;
  }

  /** It holds a sequence; `restoreTier`: its saved state is imported from that tier before prefill. */
  admitted(requestId: string, restoreTier?: 'ram' | 'disk'): void {
    const moments = this.open.get(requestId);
    if (moments === undefined) return;
    moments.admitted = epochMs();
    if (restoreTier !== undefined) moments.restoreTier = restoreTier;
  }

  /** `started` was posted: its cached prefix is in place and prefill begins. */
  started(requestId: string, promptTokens: number, cachedTokens: number, cacheTier: CacheTier): void {
    const moments = this.open.get(requestId);
    const now = epochMs();
    if (moments !== undefined) {
      moments.started = now;
      moments.cacheTier = cacheTier;
    }
    this.metrics.started(promptTokens, cachedTokens, cacheTier, moments === undefined ? 0 : seconds(moments.submitted, now));
  }

  /** A token was sampled while the request was in prefill: the first, whether or not it ends the turn. */
  firstSampled(requestId: string): void {
    const moments = this.open.get(requestId);
    if (moments !== undefined) moments.firstSampled ??= epochMs();
  }

  /** A generated token goes to the client. */
  emitted(requestId: string): void {
    const moments = this.open.get(requestId);
    const now = epochMs();
    if (moments === undefined) return this.metrics.token();
    if (moments.firstEmitted === undefined) {
      moments.firstEmitted = now;
      this.metrics.token({ ttft: seconds(moments.submitted, now), prefill: seconds(moments.started ?? moments.submitted, now) });
    } else this.metrics.token({ interToken: seconds(moments.lastEmitted ?? now, now) });
    moments.lastEmitted = now;
  }

  done(requestId: string, outcome: { finishReason: FinishReason; usage: Usage }): void {
    const moments = this.take(requestId);
    const now = epochMs();
    const since = (at: number | undefined): number | undefined => (at === undefined ? undefined : seconds(at, now));
    this.metrics.ended(outcome, since(moments?.submitted), since(moments?.firstEmitted));
    if (moments !== undefined) this.timelines.end(moments, outcome);
  }

  failed(requestId: string, code: string): void {
    const moments = this.take(requestId);
    if (moments !== undefined) this.timelines.end(moments, { error: code });
  }

  private take(requestId: string): Moments | undefined {
    const moments = this.open.get(requestId);
    this.open.delete(requestId);
    return moments;
  }
}
