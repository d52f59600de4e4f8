// The Grafana dashboard ops/grafana/semantic.json, checked the way an operator meets it: it is a
// dashboard Grafana imports as is (datasource, model and instance variables; unique panel ids on a grid
// that does not overlap; every query on the datasource variable and filtered by instance); every query
// is valid PromQL to promtool; every recording rule a query reads is one of ops/prometheus/alerts.yml;
// and every metric a query names is in a live scrape. The scrape comes from
// the real CLI twice: `serve` driven through the events that create the labelled counters (a RAM and a
// hot hit, evictions, a 429, failed cache writes), and `supervise --workers 2` through a rolling restart
// (the supervisor's own metrics, drains included, exist only there).
import t, { type Test } from 'tap';
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { join } from 'node:path';
import { projectRoot } from '../../shared/paths.js';
import { tinyModelPath } from '../helpers/model.js';
import { logged, startServer, type RunningServer } from '../helpers/server.js';
import { parseExposition } from '../helpers/exposition.js';
import { hasPromtool, metricNames, promtoolCheckRules, substituteVariables } from '../helpers/promql.js';

interface Target {
  refId: string;
  expr?: string;
  datasource?: { type?: string; uid?: string };
}

interface Panel {
  id: number;
  type: string;
  title: string;
  gridPos: { x: number; y: number; w: number; h: number };
  datasource?: { type?: string; uid?: string };
  targets?: Target[];
}

interface Variable {
  name: string;
  type: string;
  query: string | { query: string };
  multi?: boolean;
  includeAll?: boolean;
}

interface Dashboard {
  title: string;
  uid: string;
  schemaVersion: number;
  panels: Panel[];
  templating: { list: Variable[] };
}

const DATASOURCE = '${datasource}';
const dashboard = JSON.parse(readFileSync(join(projectRoot(), 'ops', 'grafana', 'semantic.json'), 'utf8')) as Dashboard;
const graphs = dashboard.panels.filter((panel) => panel.type !== 'row');
const queries = graphs.flatMap((panel) => (panel.targets ?? []).map((target) => ({ panel, target, expr: target.expr ?? '' })));
/** The recording rules the alerts evaluate (ops/prometheus/alerts.yml): the dashboard's "Alert signals" row draws the same series. */
const rules = parseYaml(readFileSync(join(projectRoot(), 'ops', 'prometheus', 'alerts.yml'), 'utf8')) as { groups: { rules: { record?: string }[] }[] };
const recorded = new Set(rules.groups.flatMap((group) => group.rules.flatMap((rule) => (rule.record === undefined ? [] : [rule.record]))));
/** Recording rules' names have a colon; metrics never do (docs/metrics.md). */
const isRecorded = (name: string): boolean => name.includes(':');
const label = (panel: Panel, target: Target): string => `panel ${panel.id} "${panel.title}" query ${target.refId}`;

const overlaps = (a: Panel['gridPos'], b: Panel['gridPos']): boolean => a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;

t.test('a dashboard Grafana imports as is', async (t) => {
  t.match(dashboard, { title: /\S/, uid: /^[\w-]{1,40}$/ });
  t.ok(dashboard.schemaVersion >= 36, `schemaVersion ${dashboard.schemaVersion}`);
  const ids = dashboard.panels.map((panel) => panel.id);
  t.equal(new Set(ids).size, ids.length, 'panel ids are unique');
  for (const panel of dashboard.panels) {
    const { x, y, w, h } = panel.gridPos;
    t.ok([x, y, w, h].every(Number.isInteger) && x >= 0 && y >= 0 && w > 0 && h > 0 && x + w <= 24, `panel ${panel.id} sits on the 24-column grid`);
  }
  const clashes = dashboard.panels.flatMap((a, i) =>
    dashboard.panels
      .slice(i + 1)
      .filter((b) => overlaps(a.gridPos, b.gridPos))
      .map((b) => `${a.id}/${b.id}`),
  );
  t.same(clashes, [], 'no two panels overlap');
  t.same(
    graphs.filter((panel) => (panel.targets ?? []).length === 0).map((panel) => panel.title),
    [],
    'every panel has a query',
  );

  const variables = new Map(dashboard.templating.list.map((variable) => [variable.name, variable]));
  const queryOf = (name: string): string => {
    const query = variables.get(name)?.query ?? '';
    return typeof query === 'string' ? query : query.query;
  };
  t.match(variables.get('datasource'), { type: 'datasource', query: 'prometheus' });
  t.match(variables.get('model'), { type: 'query' });
  t.match(queryOf('model'), /^label_values\(semantic_model_info, model\)$/);
  t.match(variables.get('instance'), { type: 'query', multi: true, includeAll: true });
  t.match(queryOf('instance'), /^label_values\(semantic_model_info\{model=~"\$model"\}, instance\)$/, 'instances follow the model chosen');

  for (const { panel, target, expr } of queries) {
    t.ok(expr.trim() !== '', `${label(panel, target)} has an expression`);
    t.same([panel.datasource?.uid, target.datasource?.uid], [DATASOURCE, DATASOURCE], `${label(panel, target)} uses the datasource variable`);
    const unfiltered = expr.replace(/[a-zA-Z_:][\w:]*\{[^}]*instance=~"\$instance"[^}]*\}/g, ' ');
    t.same(metricNames(unfiltered), [], `${label(panel, target)}: every metric is filtered by instance`);
    const unknownRules = metricNames(expr).filter((name) => isRecorded(name) && !recorded.has(name));
    t.same(unknownRules, [], `${label(panel, target)}: every recording rule it reads is one of ops/prometheus/alerts.yml`);
  }
});

t.test('every query is valid PromQL (promtool check rules)', async (t) => {
  if (!hasPromtool()) {
    t.fail("promtool is not installed: install Debian's prometheus package (.ci/run does)");
    return;
  }
  const records = new Map(queries.map(({ panel, target }) => [`panel_${panel.id}_${target.refId}`, label(panel, target)]));
  const expressions = queries.map(({ panel, target, expr }) => ({ record: `panel_${panel.id}_${target.refId}`, expr: substituteVariables(expr) }));
  const { status, output } = promtoolCheckRules(expressions);
  const failing = [...output.matchAll(/"(panel_\d+_[A-Z])"/g)].map((match) => records.get(match[1]!));
  t.equal(status, 0, status === 0 ? `${expressions.length} expressions` : `promtool rejects ${failing.join(', ') || 'the file'}:\n${output}`);
});

t.test('metric names are read from expressions, not labels, functions or grouping', async (t) => {
  t.same(metricNames('histogram_quantile(0.95, sum by (le, tier) (rate(a_bucket{x="b(c)"}[5m]))) / ignoring (tier) group_left () (sum(b) + sum(rate(c_total[1m])))'), [
    'a_bucket',
    'b',
    'c_total',
  ]);
  t.same(metricNames('1 - sum(rate(x{source="computed"}[5m])) / max by (instance, worker) (y{a=~"$instance"} / z)'), ['x', 'y', 'z']);
});

const modelPath = await tinyModelPath();
const common = ['--port', '0', '--model', modelPath, '--model-id', 'tiny', '--context-size', '1024', '--threads', '1'];

async function scrapeNames(server: RunningServer): Promise<string[]> {
  const response = await fetch(`${server.url}/metrics`);
  if (response.status !== 200) throw new Error(`GET /metrics answered ${response.status}`);
  return parseExposition(await response.text()).map((sample) => sample.name);
}

async function turn(server: RunningServer, agent: string, content: string): Promise<[number, string | null]> {
  const response = await fetch(`${server.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-agent-id': agent },
    body: JSON.stringify({ model: 'tiny', messages: [{ role: 'user', content }], max_tokens: 4, temperature: 0 }),
  });
  await response.arrayBuffer();
  return [response.status, response.headers.get('x-semantic-cache')];
}

/**
 * `serve` with one sequence, spill on, a burst of three requests per agent and every cache write failing:
 * A, B, A (from RAM: A was spilled), A (hot), A (429) make the labelled counters and histograms exist.
 */
async function serveScrape(t: Test): Promise<string[]> {
  const limits = ['--max-sequences', '1', '--idle-agents', 'spill', '--rate-limit-per-agent', '1', '--rate-limit-burst', '3'];
  const server = await startServer(['serve', ...common, ...limits], 'ready', { SEMANTIC_FAULT_DISK_WRITE: 'ENOSPC' });
  t.teardown(() => server.stop('SIGKILL'));
  const turns = [];
  for (const [agent, content] of [
    ['A', 'Remember the colour teal.'],
    ['B', 'Write a line about rivers.'],
    ['A', 'Remember the colour teal.'],
    ['A', 'Remember the colour teal.'],
    ['A', 'Remember the colour teal.'],
  ] as const)
    turns.push(await turn(server, agent, content));
  t.same(
    turns.map(([status]) => status),
    [200, 200, 200, 200, 429],
  );
  t.same([turns[2]![1], turns[3]![1]], ['ram', 'hot'], "A's cache: spilled to RAM for B, then hot");
  await logged(server, (line) => line.msg === 'agent cache write failed');
  return scrapeNames(server);
}

/** `supervise --workers 2` after a rolling restart (SIGHUP: a drain of each worker): its fleet scrape. */
async function superviseScrape(t: Test): Promise<string[]> {
  const server = await startServer(['supervise', '--workers', '2', ...common], 'all workers ready');
  t.teardown(() => server.stop('SIGKILL'));
  server.child.kill('SIGHUP');
  await logged(server, (line) => line.msg === 'rolling restart done');
  return scrapeNames(server);
}

t.test('every metric a query names is in a live scrape of serve or supervise', async (t) => {
  // Side by side: most of the time is two model loads and a rolling restart, each waiting on its own process.
  const scrapes = await Promise.all([serveScrape(t), superviseScrape(t)]);
  const scraped = new Set(scrapes.flat());
  for (const { panel, target, expr } of queries) {
    const names = metricNames(expr).filter((name) => !isRecorded(name));
    if (metricNames(expr).length > names.length) continue; // a recording rule's series: checked against alerts.yml above
    t.ok(names.length > 0, `${label(panel, target)} names a metric`);
    t.same(
      names.filter((name) => !scraped.has(name)),
      [],
      `${label(panel, target)}: ${names.join(', ')}`,
    );
  }
});
