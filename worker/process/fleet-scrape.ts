/**
 * A supervised worker's side of one scrape for the fleet (supervisor/fleet-metrics.ts): the scrape that
 * reached this worker asks the supervisor for the whole fleet's exposition, and the supervisor's
 * `collect_metrics` gets this process's metrics JSON. When no answer comes (an older supervisor that does
 * not know the message, or one too busy), the scrape falls back to this worker's own metrics, like
 * `serve`: a scrape never fails for want of the others.
 */
import type { Logger } from 'pino';
import { hasSupervisor, sendToSupervisor } from '../../shared/protocol/ipc.js';
import type { MetricFamilyJson } from '../../shared/metric-aggregation.js';

/** A Prometheus exposition and its content type. */
export interface Exposition {
  text: string;
  contentType: string;
}

export interface MetricsAnswer extends Exposition {
  id: number;
  error?: string;
}

/** Beyond the supervisor's own wait for the workers: its aggregation and the two IPC trips. */
const ANSWER_MARGIN_MS = 2000;

export class FleetScrapes {
  private readonly waiting = new Map<number, (answer: Exposition | undefined) => void>();
  private next = 0;

  constructor(
    /** The supervisor's scrape timeout: it waits this long for the workers, then answers. */
    private readonly scrapeTimeoutMs: number,
    private readonly log: Logger,
  ) {}

  /** The fleet's exposition, or undefined when the supervisor did not give it (then: this worker's own). */
  async ask(): Promise<Exposition | undefined> {
    if (!hasSupervisor()) return undefined;
    const id = this.next++;
    const answer = new Promise<Exposition | undefined>((resolve) => {
      const timer = setTimeout(() => settle(undefined), this.scrapeTimeoutMs + ANSWER_MARGIN_MS);
      const settle = (exposition: Exposition | undefined): void => {
        clearTimeout(timer);
        this.waiting.delete(id);
        resolve(exposition);
      };
      this.waiting.set(id, settle);
    });
    await sendToSupervisor({ type: 'metrics_request', id });
    const exposition = await answer;
    if (exposition === undefined) this.log.warn({ waitedMs: this.scrapeTimeoutMs + ANSWER_MARGIN_MS }, "no fleet metrics from the supervisor: this scrape has this worker's only");
    return exposition;
  }

  answered(message: MetricsAnswer): void {
    if (message.error !== undefined) this.log.error({ error: message.error }, "the supervisor could not aggregate the fleet's metrics: this scrape has this worker's only");
    this.waiting.get(message.id)?.(message.error === undefined ? { text: message.text, contentType: message.contentType } : undefined);
  }
}

/** Answers the supervisor's `collect_metrics`; with no server yet, an empty report. */
export async function reportMetrics(id: number, metrics: (() => Promise<MetricFamilyJson[]>) | undefined, log: Logger): Promise<void> {
  let families: MetricFamilyJson[] = [];
  try {
    families = (await metrics?.()) ?? [];
  } catch (error) {
    log.error({ error: (error as Error).message }, "collecting this worker's metrics failed: reported empty");
  }
  await sendToSupervisor({ type: 'metrics_report', id, metrics: families });
}
