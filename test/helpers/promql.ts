/**
 * PromQL as the ops checks meet it: Grafana's variables replaced by values Prometheus accepts, the
 * metric names an expression reads (to find each one in a live scrape), and `promtool check rules`
 * over a set of expressions (promtool has no command that checks an expression alone; a recording rule
 * in a rule file is the place it parses one).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';

/** What Grafana puts in a query's variables, as values that keep the expression valid PromQL. */
export const grafanaStandIns: Readonly<Record<string, string>> = {
  __rate_interval: '5m',
  __interval: '1m',
  __range: '1h',
  instance: '.*',
  model: '.*',
};

/** `expr` with every `$name` / `${name}` replaced from `values`; throws on a variable it does not know. */
export function substituteVariables(expr: string, values: Readonly<Record<string, string>> = grafanaStandIns): string {
  return expr.replace(/\$\{(\w+)\}|\$(\w+)/g, (whole, braced: string | undefined, bare: string | undefined) => {
    const value = values[braced ?? bare ?? ''];
    if (value === undefined) throw new Error(`unknown Grafana variable ${whole} in: ${expr}`);
    return value;
  });
}

/** Words of PromQL that stand where a metric name could, but are none. */
const keywords = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'and', 'or', 'unless', 'bool', 'offset', 'inf', 'nan']);

/**
 * The metric names `expr` selects, in order of first use: a histogram's `_bucket` stays as written
 * (the scrape has the `_bucket` series by that name). Label matchers, strings, ranges and grouping
 * lists are cut out first, so their label names are never taken for metrics; a name followed by `(`
 * is a function or an aggregation.
 */
export function metricNames(expr: string): string[] {
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ');
  const names = new Set<string>();
  for (const match of bare.matchAll(/(?<![\w.:])[a-zA-Z_:][\w:]*(?![\w:]|\s*\()/g)) {
    const name = match[0];
    if (!keywords.has(name.toLowerCase())) names.add(name);
  }
  return [...names];
}

/** One expression to check, and the name it gets as a recording rule (shown by promtool's errors). */
export interface NamedExpression {
  record: string;
  expr: string;
}

/** `promtool check rules` over `expressions` as recording rules of one group: its exit code and output. */
export function promtoolCheckRules(expressions: readonly NamedExpression[]): { status: number | null; output: string } {
  const file = join(mkdtempSync(join(tmpdir(), 'semantic-promql-')), 'rules.yml');
  writeFileSync(file, stringify({ groups: [{ name: 'expressions', rules: expressions }] }));
  const run = spawnSync('promtool', ['check', 'rules', file], { encoding: 'utf8' });
  return { status: run.status, output: `${run.stdout}${run.stderr}` };
}

export const hasPromtool = (): boolean => spawnSync('promtool', ['--version']).status === 0;
