/**
 * The Kubernetes schemas, as the maintained `kubernetes-models` packages carry them (each model's
 * validate() runs the OpenAPI schema of its kind, compiled by ajv): the core API of Kubernetes 1.32 and
 * the Prometheus Operator's CRDs. A kind neither package knows has no schema, and `schemaOf` says so.
 *
 * One CRD schema (PrometheusRule's) checks a pattern with RE2 syntax through `re2-wasm`, an optional
 * dependency of the validator that `.npmrc`'s omit=optional would leave out, so package.json names it
 * as a dev dependency of its own.
 */

/** A manifest's schema check: throws an error that names every violation. */
export type SchemaCheck = (manifest: Record<string, unknown>) => void;

interface ModelClass {
  new (data: Record<string, unknown>): { validate(): void };
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
  const specifier = modelModule(apiVersion);
  if (specifier === undefined) return undefined;
  const models = (await import(specifier).catch(() => ({}))) as Record<string, ModelClass | undefined>;
  const Model = models[kind];
  return Model === undefined ? undefined : (manifest) => new Model(manifest).validate();
}
