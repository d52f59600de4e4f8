/**
 * The license allow-list (cli/release/license-policy.json) applied to one package's declared license.
 * Pure: the checker's data comes in, a verdict goes out, so the rules are unit-tested on stubs.
 *
 * Why a small SPDX expression parser of our own: the rule is about expressions, not single ids — a
 * package under `(MIT OR GPL-3.0)` may be used under MIT, one under `(MIT AND GPL-3.0)` may not — and
 * no parser is a production or declared dev dependency. `WITH` exceptions and `LicenseRef-` ids are
 * never allowed by the list: they need a person's reading and, if fine, an exception entry.
 */

export interface LicensePolicy {
  /** SPDX license ids a package may be used under. */
  allowed: string[];
  /** Packages allowed despite their reported license, each with the reason a person gave. */
  exceptions: LicenseException[];
}

export interface LicenseException {
  /** `name@version`: an exception covers one release, so an upgrade is read again. */
  package: string;
  /** The license string the checker reports for it, exactly. */
  license: string;
  reason: string;
}

/** One installed package as the license checker reports it. */
export interface PackageLicense {
  name: string;
  version: string;
  /** The declared license (an SPDX expression); an array when package.json lists several (either applies). */
  license: string | string[] | undefined;
}

export type Verdict = { allowed: true; via: 'policy' | 'exception' } | { allowed: false; reason: string };

type Expression = { id: string } | { op: 'AND' | 'OR'; left: Expression; right: Expression };

/** Splits `(MIT OR Apache-2.0)` into `(`, `MIT`, `OR`, `Apache-2.0`, `)`. */
function tokenize(text: string): string[] {
  return text
    .replace(/[()]/g, ' $& ')
    .split(/\s+/)
    .filter((token) => token !== '');
}

/** Recursive descent over SPDX's grammar: OR binds loosest, then AND, then parentheses. */
function parseExpression(text: string): Expression {
  const tokens = tokenize(text);
  let at = 0;
  const peekOperator = (): string | undefined => tokens[at]?.toUpperCase();
  const parsePrimary = (): Expression => {
    const token = tokens[at++];
    if (token === undefined) throw new Error('the expression ends too early');
    if (token === '(') {
      const inner = parseOr();
      if (tokens[at++] !== ')') throw new Error('a parenthesis is not closed');
      return inner;
    }
    if (token === ')' || ['AND', 'OR', 'WITH'].includes(token.toUpperCase())) throw new Error(`unexpected "${token}"`);
    if (peekOperator() === 'WITH') {
      const exception = tokens[at + 1];
      if (exception === undefined || exception === '(' || exception === ')') throw new Error(`WITH after "${token}" names no exception`);
      at += 2;
      return { id: `${token} WITH ${exception}` };
    }
    return { id: token };
  };
  const parseBinary = (op: 'AND' | 'OR', operand: () => Expression) => (): Expression => {
    let left = operand();
    while (peekOperator() === op) {
      at++;
      left = { op, left, right: operand() };
    }
    return left;
  };
  const parseAnd = parseBinary('AND', parsePrimary);
  const parseOr = parseBinary('OR', parseAnd);
  const expression = parseOr();
  if (at !== tokens.length) throw new Error(`unexpected "${tokens[at] ?? ''}"`);
  return expression;
}

function satisfies(expression: Expression, allowed: ReadonlySet<string>): boolean {
  if ('id' in expression) return allowed.has(expression.id);
  return expression.op === 'OR'
    ? satisfies(expression.left, allowed) || satisfies(expression.right, allowed)
    : satisfies(expression.left, allowed) && satisfies(expression.right, allowed);
}

/** The license as one expression: several declared licenses are alternatives (old `licenses` arrays). */
export function licenseExpression(license: PackageLicense['license']): string | undefined {
  if (license === undefined) return undefined;
  const parts = (Array.isArray(license) ? license : [license]).map((part) => part.trim()).filter((part) => part !== '');
  if (parts.length === 0) return undefined;
  return parts.length === 1 ? parts[0] : parts.map((part) => `(${part})`).join(' OR ');
}

export function judgeLicense(pkg: PackageLicense, policy: LicensePolicy): Verdict {
  const expression = licenseExpression(pkg.license);
  const exception = policy.exceptions.find((entry) => entry.package === `${pkg.name}@${pkg.version}` && entry.license === (expression ?? ''));
  if (exception) return { allowed: true, via: 'exception' };
  if (expression === undefined || /^UNKNOWN$/i.test(expression)) return { allowed: false, reason: 'declares no license' };
  // license-checker marks a license it guessed from a LICENSE file's text with a trailing `*`.
  if (expression.endsWith('*')) return { allowed: false, reason: `license ${expression} is guessed from its license file, not declared` };
  let parsed: Expression;
  try {
    parsed = parseExpression(expression);
  } catch (err) {
    return { allowed: false, reason: `license "${expression}" is not an SPDX expression (${(err as Error).message})` };
  }
  if (satisfies(parsed, new Set(policy.allowed))) return { allowed: true, via: 'policy' };
  return { allowed: false, reason: `license ${expression} is not on the allow-list` };
}

/** One line per package the policy refuses, `name@version: reason`, sorted. */
export function licenseFailures(packages: readonly PackageLicense[], policy: LicensePolicy): string[] {
  return packages
    .flatMap((pkg) => {
      const verdict = judgeLicense(pkg, policy);
      return verdict.allowed ? [] : [`${pkg.name}@${pkg.version}: ${verdict.reason}`];
    })
    .sort();
}
