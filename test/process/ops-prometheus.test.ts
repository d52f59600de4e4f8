// The alert rules as an operator loads them: promtool accepts ops/prometheus/alerts.yml and its unit tests
// (alerts.test.yml) pass; every alert is tested both firing and quiet; every alert carries a severity, a
// summary, a description with its value and instance, and a runbook_url whose runbook exists; and every
// metric an expression names is in docs/metrics.md's catalogue, a recording rule of the file, or `up`.
// promtool is a real process here; without it the test fails and says how to install it.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';

const root = fileURLToPath(new URL('../../', import.meta.url));
const RULES = 'ops/prometheus/alerts.yml';
const TESTS = 'ops/prometheus/alerts.test.yml';
const RUNBOOKS = 'docs/runbooks';

interface Rule {
  record?: string;
  alert?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

interface AlertTest {
  alertname: string;
  eval_time: string;
  exp_alerts?: unknown[];
}

const read = (path: string): string => readFileSync(root + path, 'utf8');
const rules = (parse(read(RULES)) as { groups: { name: string; rules: Rule[] }[] }).groups.flatMap((group) => group.rules);
const alerts = rules.filter((rule) => rule.alert !== undefined);
const recorded = new Set(rules.flatMap((rule) => (rule.record === undefined ? [] : [rule.record])));

function promtool(...args: string[]): { status: number | null; output: string } {
  const run = spawnSync('promtool', args, { cwd: root, encoding: 'utf8' });
  if (run.error !== undefined) return { status: null, output: `promtool could not run (${run.error.message})` };
  return { status: run.status, output: `${run.stdout}${run.stderr}` };
}

const missing = 'promtool is not installed: on Debian 12 `apt-get install prometheus` (Debian 13: `promtool`); .ci/run installs it when it is missing';
const hasPromtool = promtool('--version').status === 0;

t.test('promtool check rules: the file is valid', async (t) => {
  if (!hasPromtool) return t.fail(missing);
  const { status, output } = promtool('check', 'rules', RULES);
  t.equal(status, 0, output);
  t.match(output, `SUCCESS: ${rules.length} rules found`, 'every rule of the file is read');
});

t.test('promtool test rules: every test of alerts.test.yml passes', async (t) => {
  if (!hasPromtool) return t.fail(missing);
  const { status, output } = promtool('test', 'rules', TESTS);
  t.equal(status, 0, output);
  t.match(output, /SUCCESS/);
});

t.test('every alert is tested firing and quiet, and nothing else is tested', async (t) => {
  const tests = (parse(read(TESTS)) as { tests: { alert_rule_test?: AlertTest[] }[] }).tests.flatMap((test) => test.alert_rule_test ?? []);
  const fires = new Set(tests.filter((test) => (test.exp_alerts ?? []).length > 0).map((test) => test.alertname));
  const quiet = new Set(tests.filter((test) => (test.exp_alerts ?? []).length === 0).map((test) => test.alertname));
  const names = alerts.map((alert) => alert.alert!).sort();
  t.equal(new Set(names).size, names.length, 'alert names are unique');
  t.equal(names.length, 16, 'the alerts issue 17 lists (TTFT and inter-token latency apart, disk failures and quarantine apart)');
  t.same([...fires].sort(), names, 'each alert fires in a test');
  t.same([...quiet].sort(), names, 'each alert stays quiet in a test');
});

t.test('every alert has a for, a severity, a summary, a description with its value and instance, and a runbook', async (t) => {
  const index = read(`${RUNBOOKS}/README.md`);
  for (const alert of alerts) {
    const name = alert.alert!;
    t.match(alert.for, /^\d+[mh]$/, `${name}: for`);
    t.ok(['critical', 'warning', 'info'].includes(alert.labels?.severity ?? ''), `${name}: severity ${alert.labels?.severity}`);
    t.ok((alert.annotations?.summary ?? '').length > 0, `${name}: summary`);
    t.match(alert.annotations?.description, /\$value/, `${name}: the description says the value`);
    t.match(alert.annotations?.description, /\$labels\.instance/, `${name}: and the instance`);
    const url = alert.annotations?.runbook_url ?? '';
    t.ok(url.endsWith(`/${RUNBOOKS}/${name}.md`), `${name}: runbook_url ${url}`);
    t.ok(existsSync(`${root}${RUNBOOKS}/${name}.md`), `${name}: ${RUNBOOKS}/${name}.md exists`);
    t.ok(index.includes(`(${name}.md)`), `${name}: listed in ${RUNBOOKS}/README.md`);
  }
});

/** The metric names a PromQL expression selects: strings, label matchers, ranges, grouping clauses and functions left out. */
function metricNames(expr: string): string[] {
  const bare = expr
    .replace(/"[^"]*"/g, '')
    .replace(/\{[^}]*\}/g, '')
    .replace(/\[[^\]]*\]/g, '')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, '')
    .replace(/\boffset\s+\d+[smhdwy]/g, '')
    .replace(/\b[a-z_]+\s*\(/g, '(');
  const keywords = new Set(['and', 'or', 'unless', 'bool', 'group_left', 'group_right']);
  return [...bare.matchAll(/[a-zA-Z_:][a-zA-Z0-9_:]*/g)].map((match) => match[0]).filter((word) => !keywords.has(word));
}

t.test("every metric the rules name is in docs/metrics.md's catalogue, a recording rule, or up", async (t) => {
  const metrics = read('docs/metrics.md');
  const catalogue = metrics.slice(metrics.indexOf('## The catalogue'), metrics.indexOf('## Not a metric'));
  const documented = new Set([...catalogue.matchAll(/`(semantic_[a-z0-9_]+)/g)].map((match) => match[1]));
  const used = new Set(rules.flatMap((rule) => metricNames(rule.expr)));
  t.ok(used.has('semantic_time_to_first_token_seconds_bucket') && used.has('up'), 'the name parser sees through functions and matchers');
  for (const name of used) {
    const family = name.replace(/_(bucket|count|sum)$/, '');
    t.ok(name === 'up' || recorded.has(name) || documented.has(family), `${name} is documented`);
  }
  for (const name of recorded) t.match(name, /^semantic:[a-z0-9_]+:[a-z0-9_]+$/, `${name}: level:metric:operation`);
});
