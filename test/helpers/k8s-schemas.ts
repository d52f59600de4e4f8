/**
 * The Kubernetes schemas, as the maintained `kubernetes-models` packages carry them (each model's
 * validate() runs the OpenAPI schema of its kind, compiled by ajv): the core API of Kubernetes 1.32 and
 * the Prometheus Operator's CRDs. A kind neither package knows has no schema, and `schemaOf` says so.
 *
 * One CRD schema (PrometheusRule's) checks a pattern with RE2 syntax through `re2-wasm`, an optional
 * dependency that `.npmrc`'s omit=optional leaves out. Where it is missing, an RE2 stand-in on
 * JavaScript's RegExp is registered (`(?flags)` at the start becomes RegExp flags, the only RE2-only
 * syntax in those patterns); installing re2-wasm makes the real one used instead.
 */
import { register } from 'node:module';

/** A manifest's schema check: throws an error that names every violation. */
export type SchemaCheck = (manifest: Record<string, unknown>) => void;

interface ModelClass {
  new (data: Record<string, unknown>): { validate(): void };
}

const re2StandIn = `
export class RE2 {
  constructor(pattern, flags = '') {
    const source = String(pattern);
    const inline = /^(\\^?)\\(\\?([imsU]+)\\)/.exec(source);
    const extra = inline ? inline[2].replace('U', '') : '';
    this.regexp = new RegExp(inline ? inline[1] + source.slice(inline[0].length) : source, [...new Set(flags + extra)].join(''));
  }
  test(text) { return this.regexp.test(text); }
  exec(text) { return this.regexp.exec(text); }
}
export default { RE2 };`;

const resolveHooks = `
export async function resolve(specifier, context, next) {
  if (specifier !== 're2-wasm') return next(specifier, context);
  try { return await next(specifier, context); }
  catch { return { url: 'data:text/javascript,' + encodeURIComponent(${JSON.stringify(re2StandIn)}), shortCircuit: true }; }
}`;

let hooksRegistered = false;

function useRe2StandInWhereMissing(): void {
  if (hooksRegistered) return;
  hooksRegistered = true;
  register('data:text/javascript,' + encodeURIComponent(resolveHooks));
}

/** The module of an apiVersion's models, or undefined when no package carries that group. */
function modelModule(apiVersion: string): string | undefined {
  const [group, version] = apiVersion.includes('/') ? apiVersion.split('/') : ['', apiVersion];
  if (group === 'monitoring.coreos.com') return `@kubernetes-models/prometheus-operator/monitoring.coreos.com/${version}`;
  if (group === '') return `kubernetes-models/${version}`;
  if (group === 'apps' || group === 'policy' || group === 'batch' || group === 'autoscaling' || group?.endsWith('.k8s.io')) return `kubernetes-models/${group}/${version}`;
  return undefined;
}

/** The schema check of an apiVersion and kind, or undefined when neither package knows that kind. */
export async function schemaOf(apiVersion: string, kind: string): Promise<SchemaCheck | undefined> {
  useRe2StandInWhereMissing();
  const specifier = modelModule(apiVersion);
  if (specifier === undefined) return undefined;
  const models = (await import(specifier).catch(() => ({}))) as Record<string, ModelClass | undefined>;
  const Model = models[kind];
  return Model === undefined ? undefined : (manifest) => new Model(manifest).validate();
}
