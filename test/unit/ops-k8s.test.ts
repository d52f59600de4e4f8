// The Kubernetes manifests under ops/k8s: every YAML document is valid against the schema of its kind
// (the maintained kubernetes-models packages; a kind with no schema fails), the kustomizations list
// exactly their folder's manifests, the shared-volume overlay applies to the base and gives a valid
// StatefulSet, and the settings that keep requests and caches alive hold: the three probes on their
// paths, a grace period longer than the drain, volume budgets that fit their volumes, selectors that
// select, and the generated PrometheusRule and dashboard ConfigMap equal to their sources.
import t from 'tap';
import { readFileSync, readdirSync } from 'node:fs';
import { basename, dirname, join, relative } from 'node:path';
import { parse, parseAllDocuments } from 'yaml';
import { ConfigError, loadConfig } from '../../shared/config.js';
import { projectRoot } from '../../shared/paths.js';
import { schemaOf } from '../helpers/k8s-schemas.js';

type Json = Record<string, unknown>;
/* eslint-disable @typescript-eslint/no-explicit-any -- manifests are untyped YAML: the schema checks give them their shape */
type Manifest = any;

const opsDir = join(projectRoot(), 'ops');
const k8sDir = join(opsDir, 'k8s');

function yamlFiles(dir: string): string[] {
  return (readdirSync(dir, { recursive: true }) as string[])
    .filter((name) => /\.ya?ml$/.test(name))
    .sort()
    .map((name) => join(dir, name));
}

/** The documents of a YAML file; a syntax error fails here, with the file's name. */
function documentsOf(file: string): unknown[] {
  return parseAllDocuments(readFileSync(file, 'utf8')).map((document) => {
    if (document.errors.length > 0) throw new Error(`${relative(k8sDir, file)}: ${document.errors.map((error) => error.message).join('; ')}`);
    return document.toJS() as unknown;
  });
}

const isPatchFile = (file: string): boolean => basename(file).endsWith('-patch.yaml');
const isKustomization = (file: string): boolean => basename(file) === 'kustomization.yaml';
const manifestFiles = (dir: string): string[] => yamlFiles(dir).filter((file) => dirname(file) === dir && !isKustomization(file) && !isPatchFile(file));
const manifestsIn = (files: string[]): Manifest[] => files.flatMap((file) => documentsOf(file));
const base: Manifest[] = manifestsIn(manifestFiles(k8sDir));

function only(manifests: Manifest[], kind: string, name?: string): Manifest {
  const found = manifests.filter((manifest) => manifest.kind === kind && (name === undefined || manifest.metadata?.name === name));
  if (found.length !== 1) throw new Error(`expected one ${kind}${name === undefined ? '' : ` ${name}`}, found ${found.length}`);
  return found[0];
}

/** The value after a flag in a container's args (every value there is a string). */
function argValue(args: string[], flag: string): string | undefined {
  const at = args.indexOf(flag);
  return at < 0 ? undefined : args[at + 1];
}

/** A Kubernetes quantity of bytes ("20Gi", "512Mi", "1000") as a number. */
function bytesOf(quantity: string): number {
  const units: Record<string, number> = { '': 1, Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40 };
  const match = /^(\d+)(Ki|Mi|Gi|Ti)?$/.exec(quantity);
  if (match === null) throw new Error(`not a byte quantity this test reads: ${quantity}`);
  return Number(match[1]) * (units[match[2] ?? ''] ?? NaN);
}

const selects = (selector: Json, labels: Json): boolean => Object.entries(selector).every(([key, value]) => labels[key] === value);

t.test('every document under ops/k8s is valid against the schema of its kind', async (t) => {
  const files = yamlFiles(k8sDir).filter((file) => !isKustomization(file) && !isPatchFile(file));
  t.ok(files.length >= 8, `${files.length} manifest files`);
  for (const file of files) {
    for (const manifest of documentsOf(file) as Manifest[]) {
      const where = `${relative(k8sDir, file)}: ${manifest?.kind}/${manifest?.metadata?.name}`;
      const check = await schemaOf(String(manifest?.apiVersion), String(manifest?.kind));
      if (check === undefined) {
        t.fail(`${where}: no schema for ${manifest?.apiVersion} ${manifest?.kind}`);
        continue;
      }
      t.doesNotThrow(() => check(manifest), where);
    }
  }
});

t.test('the schema check refuses a broken manifest (it checks, it does not just parse)', async (t) => {
  const statefulSet = structuredClone(only(base, 'StatefulSet'));
  statefulSet.spec.template.spec.containers[0].ports[0].containerPort = '8080';
  delete statefulSet.spec.selector;
  const check = await schemaOf('apps/v1', 'StatefulSet');
  t.throws(() => check?.(statefulSet), /containerPort must be integer.*selector|selector.*containerPort must be integer/s);
  const rule = structuredClone(only(base, 'PrometheusRule'));
  const checkRule = await schemaOf('monitoring.coreos.com/v1', 'PrometheusRule');
  t.doesNotThrow(
    () => checkRule?.({ ...rule, spec: { groups: [{ ...rule.spec.groups[0], partial_response_strategy: 'WARN' }] } }),
    'an RE2 pattern (case-insensitive flag) is honoured',
  );
  t.throws(() => checkRule?.({ ...rule, spec: { groups: [{ ...rule.spec.groups[0], partial_response_strategy: 'ignore' }] } }), /partial_response_strategy must match pattern/);
  rule.spec.groups[0].rules[0].expr = { not: 'promql' };
  t.throws(() => checkRule?.(rule), /expr must be string/);
  t.equal(await schemaOf('gateway.networking.k8s.io/v1', 'HTTPRoute'), undefined, 'a kind with no schema is reported as such');
});

t.test('each kustomization lists exactly the manifests of its folder, and its patches exist', async (t) => {
  const kustomizations = yamlFiles(k8sDir).filter(isKustomization);
  t.same(
    kustomizations.map((file) => relative(k8sDir, file)),
    ['kustomization.yaml', 'shared-cache/kustomization.yaml'],
  );
  for (const file of kustomizations) {
    const kustomization = parse(readFileSync(file, 'utf8')) as Manifest;
    const dir = dirname(file);
    const expected = manifestFiles(dir).map((manifest) => basename(manifest));
    const parent = dir === k8sDir ? [] : ['../'];
    t.same([...kustomization.resources].sort(), [...parent, ...expected].sort(), relative(k8sDir, file));
    const patches = yamlFiles(dir).filter((patch) => dirname(patch) === dir && isPatchFile(patch));
    t.same((kustomization.patches ?? []).map((patch: Manifest) => patch.path).sort(), patches.map((patch) => basename(patch)).sort());
  }
});

t.test('the probes: startup, readiness and liveness on their /health paths, on the serving port', async (t) => {
  const container = only(base, 'StatefulSet').spec.template.spec.containers[0];
  t.equal(argValue(container.args, '--port'), '8080');
  t.same(container.ports, [{ name: 'http', containerPort: 8080, protocol: 'TCP' }]);
  t.same(container.startupProbe.httpGet, { path: '/health/startup', port: 'http' });
  t.same(container.readinessProbe.httpGet, { path: '/health/ready', port: 'http' });
  t.same(container.livenessProbe.httpGet, { path: '/health/live', port: 'http' });
  t.equal(container.readinessProbe.failureThreshold, 1, 'a busy or draining pod leaves rotation at its first 503');
  t.ok(container.startupProbe.periodSeconds * container.startupProbe.failureThreshold >= 600, 'ten minutes for a model load');
});

t.test('the grace period outlasts the preStop sleep plus --drain-timeout, passed explicitly', async (t) => {
  const pod = only(base, 'StatefulSet').spec.template.spec;
  const drainTimeout = Number(argValue(pod.containers[0].args, '--drain-timeout'));
  t.equal(drainTimeout, 30);
  t.same(pod.containers[0].lifecycle.preStop.exec.command, ['sleep', '5']);
  t.equal(pod.terminationGracePeriodSeconds, 45);
  t.ok(pod.terminationGracePeriodSeconds >= 5 + drainTimeout + 10, 'preStop 5 s + drain + at least 10 s of margin');
});

t.test('the pod runs as the image user, unprivileged, read-only, without Service environment variables', async (t) => {
  const pod = only(base, 'StatefulSet').spec.template.spec;
  const container = pod.containers[0];
  const imageUser = /^USER (\d+):(\d+)$/m.exec(readFileSync(join(projectRoot(), 'Dockerfile'), 'utf8'));
  t.same([pod.securityContext.runAsUser, pod.securityContext.runAsGroup, pod.securityContext.fsGroup], [Number(imageUser?.[1]), Number(imageUser?.[2]), Number(imageUser?.[2])]);
  t.equal(pod.securityContext.runAsNonRoot, true);
  t.same(container.securityContext, { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } });
  t.same(container.volumeMounts.map((mount: Manifest) => mount.mountPath).sort(), ['/tmp', '/var/cache/semantic']);
  // A Service named `semantic` would set SEMANTIC_PORT=tcp://…, which the option loader reads as --port.
  t.equal(pod.enableServiceLinks, false);
  t.throws(() => loadConfig({ env: { SEMANTIC_PORT: 'tcp://10.96.0.12:8080' } }), ConfigError, 'what a service link would do');
  t.equal(Number(argValue(container.args, '--threads')), Number(container.resources.requests.cpu), 'one llama.cpp thread per requested CPU');
});

t.test('per-pod volumes: ReadWriteOnce, the cache dir on it, and a disk budget that fits it', async (t) => {
  const statefulSet = only(base, 'StatefulSet');
  const args: string[] = statefulSet.spec.template.spec.containers[0].args;
  t.equal(argValue(args, '--cache-dir'), '/var/cache/semantic/agents', 'inside the mount of the agent-cache volume');
  const [claim] = statefulSet.spec.volumeClaimTemplates;
  t.equal(claim.metadata.name, 'agent-cache');
  t.same(claim.spec.accessModes, ['ReadWriteOnce']);
  const budget = Number(argValue(args, '--disk-cache-bytes'));
  t.ok(budget > 0 && budget <= 0.85 * bytesOf(claim.spec.resources.requests.storage), `${budget} bytes within 85 % of ${claim.spec.resources.requests.storage}`);
});

/** RFC 6902 as kustomize applies it, for the operations the overlay uses (test, replace, remove, add). */
function applyJsonPatch(target: Manifest, operations: Manifest[]): Manifest {
  const result = structuredClone(target);
  for (const { op, path, value } of operations) {
    const keys = String(path).split('/').slice(1);
    const last = keys.pop() as string;
    const parent = keys.reduce((node, key) => node?.[key], result);
    if (parent === undefined) throw new Error(`${op} ${path}: no such parent`);
    if (op === 'test' && JSON.stringify(parent[last]) !== JSON.stringify(value)) throw new Error(`test ${path}: ${JSON.stringify(parent[last])} is not ${JSON.stringify(value)}`);
    if (op === 'replace' || op === 'remove') {
      if (!(last in parent)) throw new Error(`${op} ${path}: nothing there`);
      if (op === 'replace') parent[last] = value;
      else if (Array.isArray(parent)) parent.splice(Number(last), 1);
      else delete parent[last];
    }
    if (op === 'add' && Array.isArray(parent)) parent.splice(last === '-' ? parent.length : Number(last), 0, value);
    else if (op === 'add') parent[last] = value;
  }
  return result;
}

t.test('the shared-volume overlay: one ReadWriteMany claim, and replicas × disk budget fit in it', async (t) => {
  const overlayDir = join(k8sDir, 'shared-cache');
  const patch = documentsOf(join(overlayDir, 'statefulset-patch.yaml'))[0] as Manifest[];
  const statefulSet = applyJsonPatch(only(base, 'StatefulSet'), patch);
  const check = await schemaOf('apps/v1', 'StatefulSet');
  t.doesNotThrow(() => check?.(statefulSet), 'the patched StatefulSet is valid');
  t.equal(statefulSet.spec.volumeClaimTemplates, undefined);
  const claim = only(manifestsIn(manifestFiles(overlayDir)), 'PersistentVolumeClaim');
  t.same(claim.spec.accessModes, ['ReadWriteMany']);
  const volume = statefulSet.spec.template.spec.volumes.find((volume: Manifest) => volume.name === 'agent-cache');
  t.same(volume, { name: 'agent-cache', persistentVolumeClaim: { claimName: claim.metadata.name } });
  const budget = Number(argValue(statefulSet.spec.template.spec.containers[0].args, '--disk-cache-bytes'));
  const volumeBytes = bytesOf(claim.spec.resources.requests.storage);
  t.equal(budget, 40 * 2 ** 30);
  t.ok(statefulSet.spec.replicas * budget <= 0.8 * volumeBytes, `${statefulSet.spec.replicas} replicas × ${budget} within 80 % of ${volumeBytes}`);
  t.throws(
    () => applyJsonPatch({ spec: { template: { spec: { containers: [{ args: ['--port', '1'] }] } } } }, patch),
    /test .*args\/4/,
    'the patch refuses a base whose args moved',
  );
});

t.test('Services, the ServiceMonitor, the PodDisruptionBudget and the Ingress select the pods', async (t) => {
  const podLabels = only(base, 'StatefulSet').spec.template.metadata.labels;
  const services = base.filter((manifest) => manifest.kind === 'Service');
  t.same(services.map((service) => service.metadata.name).sort(), ['semantic', 'semantic-headless']);
  for (const service of services) t.ok(selects(service.spec.selector, podLabels), `${service.metadata.name} selects the pods`);
  t.equal(only(base, 'Service', 'semantic-headless').spec.clusterIP, 'None');
  t.equal(only(base, 'StatefulSet').spec.serviceName, 'semantic-headless');
  const monitor = only(base, 'ServiceMonitor');
  const scraped = services.filter((service) => selects(monitor.spec.selector.matchLabels, service.metadata.labels));
  t.same(
    scraped.map((service) => service.metadata.name),
    ['semantic'],
    'one Service scraped, so no pod is scraped twice',
  );
  t.same(
    monitor.spec.endpoints.map((endpoint: Manifest) => [endpoint.port, endpoint.path]),
    [['http', '/metrics']],
  );
  t.ok(selects(only(base, 'PodDisruptionBudget').spec.selector.matchLabels, podLabels));
  const ingress = only(base, 'Ingress');
  t.equal(ingress.metadata.annotations['nginx.ingress.kubernetes.io/upstream-hash-by'], '$http_x_agent_id');
  t.equal(ingress.metadata.annotations['nginx.ingress.kubernetes.io/proxy-buffering'], 'off');
  t.same(ingress.spec.rules[0].http.paths[0].backend.service, { name: 'semantic', port: { name: 'http' } });
});

t.test('the generated manifests equal their sources (npm run ops:generate)', async (t) => {
  const rules = parse(readFileSync(join(opsDir, 'prometheus', 'alerts.yml'), 'utf8')) as Manifest;
  t.same(only(base, 'PrometheusRule').spec.groups, rules.groups, 'prometheusrule.yaml carries alerts.yml');
  const dashboard = readFileSync(join(opsDir, 'grafana', 'semantic.json'), 'utf8');
  const configMap = only(base, 'ConfigMap', 'semantic-grafana-dashboard');
  t.equal(configMap.metadata.labels.grafana_dashboard, '1');
  t.equal(configMap.data['semantic.json'], dashboard, 'grafana-dashboard-configmap.yaml carries semantic.json byte for byte');
  t.ok(Buffer.byteLength(dashboard) < 2 ** 20, 'within the 1 MiB a ConfigMap may hold');
});
