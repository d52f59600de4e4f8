/**
 * OpenTelemetry traces for one worker process, configured by the standard `OTEL_*` variables
 * (docs/operations.md, "Traces"). Off unless an exporter is asked for; off costs nothing: the SDK is
 * imported only when tracing is on, and the API's no-op tracer is never even called (the span
 * points check `tracingOn()` first). One SDK per process, on the main thread: the inference and
 * piscina threads send span records instead (timeline.ts), so they load no SDK and export nothing.
 */
import type { Logger } from 'pino';
import type { SpanProcessor } from '@opentelemetry/sdk-trace-base';

let on = false;

/** Whether spans are made in this process: set once the SDK started. */
export function tracingOn(): boolean {
  return on;
}

/**
 * Tracing is asked for when an OTLP endpoint is named (`OTEL_EXPORTER_OTLP_ENDPOINT` or
 * `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) or an exporter is (`OTEL_TRACES_EXPORTER`, e.g. `otlp` or
 * `console`), unless `OTEL_TRACES_EXPORTER=none` or `OTEL_SDK_DISABLED=true` says no. An unset
 * variable leaves tracing off, though the SDK alone would default to OTLP on localhost.
 */
export function tracingWanted(env: NodeJS.ProcessEnv = process.env): boolean {
  const set = (name: string): string | undefined => (env[name]?.trim() ?? '') || undefined;
  if (set('OTEL_SDK_DISABLED')?.toLowerCase() === 'true') return false;
  const exporters = set('OTEL_TRACES_EXPORTER')
    ?.split(',')
    .map((name) => name.trim())
    .filter((name) => name !== '');
  if (exporters !== undefined && exporters.every((name) => name === 'none')) return false;
  return exporters !== undefined || set('OTEL_EXPORTER_OTLP_ENDPOINT') !== undefined || set('OTEL_EXPORTER_OTLP_TRACES_ENDPOINT') !== undefined;
}

export interface Tracing {
  /** Ends the SDK: spans not yet exported are sent first. Resolves even when the collector is gone. */
  shutdown(): Promise<void>;
}

/**
 * Starts the SDK when tracing is asked for: traces only (no OTel metrics or logs: Prometheus and
 * pino serve those), the exporter, sampler and resource from the environment, `semantic` as the
 * service name unless `OTEL_SERVICE_NAME` names another. `spanProcessors` (benches, tests) replace the
 * exporter the environment names, and start the SDK whatever it says.
 */
export async function startTracing(logger: Logger, spanProcessors?: SpanProcessor[]): Promise<Tracing> {
  if ((spanProcessors === undefined && !tracingWanted()) || on) return { shutdown: () => Promise.resolve() };
  const { NodeSDK } = await import('@opentelemetry/sdk-node');
  const serviceName = process.env['OTEL_SERVICE_NAME'] === undefined ? { serviceName: 'semantic' } : {};
  const sdk = new NodeSDK({ ...serviceName, instrumentations: [], metricReaders: [], logRecordProcessors: [], ...(spanProcessors === undefined ? {} : { spanProcessors }) });
  sdk.start();
  on = true;
  logger.info(
    {
      exporter: process.env['OTEL_TRACES_EXPORTER'] ?? 'otlp',
      protocol: process.env['OTEL_EXPORTER_OTLP_TRACES_PROTOCOL'] ?? process.env['OTEL_EXPORTER_OTLP_PROTOCOL'] ?? 'http/protobuf',
    },
    'tracing on',
  );
  return {
    shutdown: async () => {
      on = false;
      await sdk.shutdown().catch((error: unknown) => logger.warn({ err: error }, 'tracing shutdown failed: spans may be lost'));
    },
  };
}
