/**
 * JSON Schema → GBNF (llama.cpp's grammar format), for the schema subset that tool parameters and
 * OpenAI `response_format` use. The sampler then only lets the model write text the grammar accepts,
 * as llama-server does for `json_object` / `json_schema` and forced tool calls.
 *
 * Hand-written on purpose: no maintained npm package converts JSON Schema to GBNF, llama.cpp's C++
 * converter lives in its `common` library (not in the prebuilt libllama we link), and this release
 * ships no JS port. The output follows llama.cpp's converter where it matters: the same primitive
 * rules, properties in the schema's order (required ones mandatory, optional ones optional, never
 * anything unlisted), and bounded whitespace so a weak model cannot loop in blanks.
 *
 * Supported: type object / array (items, minItems, maxItems) / string (minLength, maxLength) /
 * number / integer / boolean / null, type arrays, enum and const of any JSON values, anyOf / oneOf,
 * a one-element allOf, and local `$ref`s into `$defs` / `definitions`. Anything else (no type,
 * pattern, format, remote refs...) falls back to the widest match: any JSON value, or any string for
 * a string with a pattern or format.
 */

import { BadRequestError } from '../../shared/errors.js';

/** A JSON Schema as it arrives in a request: parsed JSON, checked only as far as we read it. */
export type JsonSchema = boolean | { readonly [keyword: string]: unknown };

/** A schema's rules, for embedding in a larger grammar: reference `root`, append `rules`. */
export interface SchemaRules {
  /** The rule name that matches the schema (the `ruleName` given, made a valid GBNF name). */
  readonly root: string;
  /** `name ::= body` lines: the schema's own rules, then the shared primitives it uses. */
  readonly rules: string[];
}

/** maxItems above this is treated as unbounded: GBNF expands `{m,n}` into n nested rules. */
const MAX_EXPANDED_REPETITION = 64;

/**
 * Bounds on what a client's schema may cost. A schema nested thousands deep overflowed the
 * converter's stack (a 500), and a 20,000-value enum held the engine for 40 s over 5 tokens, every
 * other agent waiting: the grammar is matched against the whole vocabulary at each refused token.
 * OpenAI's structured outputs set limits of the same order (10 levels, 5,000 properties, 1,000 enum values).
 */
export const SCHEMA_LIMITS = { depth: 32, rules: 2000, literals: 1000 } as const;

/** Shared rules, named as llama.cpp names them; `dependencies` pulls in what each one references. */
const PRIMITIVES: Readonly<Record<string, { body: string; dependencies: readonly string[] }>> = {
  space: { body: '| " " | "\\n" [ \\t]{0,20}', dependencies: [] },
  boolean: { body: '("true" | "false") space', dependencies: ['space'] },
  null: { body: '"null" space', dependencies: ['space'] },
  'integral-part': { body: '[0] | [1-9] [0-9]{0,15}', dependencies: [] },
  'decimal-part': { body: '[0-9]{1,16}', dependencies: [] },
  integer: { body: '("-"? integral-part) space', dependencies: ['integral-part', 'space'] },
  number: {
    body: '("-"? integral-part) ("." decimal-part)? ([eE] [-+]? integral-part)? space',
    dependencies: ['integral-part', 'decimal-part', 'space'],
  },
  char: { body: '[^"\\\\\\x7F\\x00-\\x1F] | [\\\\] (["\\\\bfnrt] | "u" [0-9a-fA-F]{4})', dependencies: [] },
  string: { body: '"\\"" char* "\\"" space', dependencies: ['char', 'space'] },
  value: {
    body: 'object | array | string | number | boolean | null',
    dependencies: ['object', 'array', 'string', 'number', 'boolean', 'null'],
  },
  object: {
    body: '"{" space ( string ":" space value ("," space string ":" space value)* )? "}" space',
    dependencies: ['space', 'string', 'value'],
  },
  array: { body: '"[" space ( value ("," space value)* )? "]" space', dependencies: ['space', 'value'] },
};

const PRIMITIVE_FOR_TYPE: Readonly<Record<string, string>> = {
  object: 'object',
  array: 'array',
  string: 'string',
  number: 'number',
  integer: 'integer',
  boolean: 'boolean',
  null: 'null',
};

/** `text` as a GBNF string literal: quotes, backslashes and control characters escaped. */
export function gbnfLiteral(text: string): string {
  const escaped = text
    .replace(/["\\\r\n\t]/g, (c) => ({ '"': '\\"', '\\': '\\\\', '\r': '\\r', '\n': '\\n', '\t': '\\t' })[c] ?? c)
    .replace(/[\x00-\x1f\x7f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
  return `"${escaped}"`;
}

/**
 * The rules matching `schema`, rooted at `ruleName`, for embedding in a larger grammar. Every rule
 * the schema needs is named `<root>-...` (the shared primitives excepted), so schemas converted under
 * distinct names (after sanitising to letters, digits and dashes; never `root`) merge without clashes.
 */
/**
 * What the schemas of one request have used of SCHEMA_LIMITS so far: share one across the schemas
 * of a request's tools, so that many tools cannot each spend the whole allowance.
 */
export interface SchemaBudget {
  rules: number;
  literals: number;
}

export function schemaRules(schema: JsonSchema, ruleName: string, param?: string, budget: SchemaBudget = { rules: 0, literals: 0 }): SchemaRules {
  const converter = new Converter(schema, ruleNameOf(ruleName), param, budget);
  const root = converter.ruleFor(schema, ruleName);
  return { root, rules: converter.allRules() };
}

/**
 * A complete grammar (root rule `root`) that accepts exactly the JSON texts `schema` describes.
 * A schema over SCHEMA_LIMITS is a BadRequestError naming `param`.
 */
export function jsonSchemaGrammar(schema: JsonSchema, param?: string): string {
  return schemaRules(schema, 'root', param).rules.join('\n') + '\n';
}

/** A complete grammar accepting any JSON object: OpenAI `response_format: {type: "json_object"}`. */
export function jsonObjectGrammar(): string {
  return jsonSchemaGrammar({ type: 'object' });
}

/**
 * A complete grammar `root ::= rootBody` plus `rules`; identical lines appear once, so the rules of
 * several `schemaRules` calls (which share the primitives) can simply be concatenated.
 */
export function grammarOf(rootBody: string, ...ruleSets: readonly string[][]): string {
  const lines = new Set<string>([`root ::= ${rootBody}`]);
  for (const rules of ruleSets) for (const rule of rules) lines.add(rule);
  return [...lines].join('\n') + '\n';
}

function isObjectSchema(schema: JsonSchema): schema is { readonly [keyword: string]: unknown } {
  return typeof schema === 'object' && schema !== null && !Array.isArray(schema);
}

/** A valid GBNF rule name (letters, digits, dashes) derived from arbitrary text. */
function ruleNameOf(text: string): string {
  const name = text.replace(/[^A-Za-z0-9-]+/g, '-');
  return name === '' ? 'x' : name;
}

class Converter {
  private readonly rules = new Map<string, string>();
  private depth = 0;
  private readonly primitivesUsed = new Set<string>();
  /** The optional-property chain starting at a property's rule → the chain's rule name. */
  private readonly chains = new Map<string, string>();
  /** `$ref` target → the rule name it got, so recursive schemas reference instead of expanding. */
  private readonly refRules = new Map<string, string>();

  /** `prefix` keeps `$ref` rules of different schemas apart when their grammars are merged. */
  constructor(
    private readonly rootSchema: JsonSchema,
    private readonly prefix: string,
    /** The request field the schema came from, named by a limit's 400. */
    private readonly param: string | undefined,
    private readonly budget: SchemaBudget,
  ) {}

  /** Defines a rule named after `name` for `schema` and returns the name it got. */
  ruleFor(schema: JsonSchema, name: string): string {
    const ruleName = this.uniqueName(ruleNameOf(name));
    this.rules.set(ruleName, ''); // reserve the name before nested rules take theirs
    if (++this.depth > SCHEMA_LIMITS.depth) this.refuse(`it nests more than ${SCHEMA_LIMITS.depth} levels deep`);
    this.rules.set(ruleName, this.bodyFor(schema, ruleName));
    this.depth--;
    return ruleName;
  }

  private refuse(reason: string): never {
    throw new BadRequestError(`The JSON schema is too complex to constrain the output with: ${reason}.`, this.param);
  }

  allRules(): string[] {
    const lines = [...this.rules].map(([name, body]) => `${name} ::= ${body}`);
    const primitives = this.withDependencies([...this.primitivesUsed]);
    return [...lines, ...primitives.map((name) => `${name} ::= ${PRIMITIVES[name]!.body}`)];
  }

  private uniqueName(base: string): string {
    if (++this.budget.rules > SCHEMA_LIMITS.rules) this.refuse(`it needs more than ${SCHEMA_LIMITS.rules} grammar rules`);
    let name = Object.hasOwn(PRIMITIVES, base) ? `${base}-` : base;
    for (let n = 1; this.rules.has(name); n++) name = `${base}-${n}`;
    return name;
  }

  private primitive(name: string): string {
    this.primitivesUsed.add(name);
    return name;
  }

  private withDependencies(names: string[]): string[] {
    const all = new Set<string>();
    const visit = (name: string): void => {
      if (all.has(name)) return;
      all.add(name);
      PRIMITIVES[name]!.dependencies.forEach(visit);
    };
    names.forEach(visit);
    return [...all].sort();
  }

  /** The right-hand side of a rule matching `schema`; nested parts get rules named `name-...`. */
  private bodyFor(schema: JsonSchema, name: string): string {
    if (!isObjectSchema(schema)) return this.primitive('value');
    if (typeof schema.$ref === 'string') return this.refRule(schema.$ref);
    if ('const' in schema) return this.literalOf(schema.const);
    if (Array.isArray(schema.enum) && schema.enum.length > 0) return schema.enum.map((v) => this.literalOf(v)).join(' | ');
    const alternatives = schema.anyOf ?? schema.oneOf;
    if (Array.isArray(alternatives) && alternatives.length > 0) {
      return alternatives.map((alt, i) => this.ruleFor(alt as JsonSchema, `${name}-${i}`)).join(' | ');
    }
    if (Array.isArray(schema.allOf) && schema.allOf.length === 1) return this.bodyFor(schema.allOf[0] as JsonSchema, name);
    if (Array.isArray(schema.type)) {
      return schema.type.map((type) => this.ruleFor({ ...schema, type }, `${name}-${String(type)}`)).join(' | ');
    }
    return this.bodyForType(schema, name);
  }

  private bodyForType(schema: { readonly [keyword: string]: unknown }, name: string): string {
    switch (schema.type) {
      case 'object':
        return this.objectBody(schema, name);
      case 'array':
        return this.arrayBody(schema, name);
      case 'string':
        return this.stringBody(schema);
      default:
        return typeof schema.type === 'string' && Object.hasOwn(PRIMITIVE_FOR_TYPE, schema.type) ? this.primitive(PRIMITIVE_FOR_TYPE[schema.type]!) : this.primitive('value');
    }
  }

  /** A JSON value written exactly as JSON.stringify writes it, then optional whitespace. */
  private literalOf(value: unknown): string {
    if (++this.budget.literals > SCHEMA_LIMITS.literals) this.refuse(`it has more than ${SCHEMA_LIMITS.literals} enum or const values`);
    return `${gbnfLiteral(JSON.stringify(value) ?? 'null')} ${this.primitive('space')}`;
  }

  private refRule(ref: string): string {
    const known = this.refRules.get(ref);
    if (known !== undefined) return known;
    const match = /^#\/(\$defs|definitions)\/([^/]+)$/.exec(ref);
    const defs = match && isObjectSchema(this.rootSchema) ? this.rootSchema[match[1]!] : undefined;
    const target = match && isObjectSchema(defs as JsonSchema) ? (defs as Record<string, unknown>)[match[2]!] : undefined;
    if (target === undefined) return this.primitive('value');
    const ruleName = this.uniqueName(ruleNameOf(`${this.prefix}-ref-${match![2]!}`));
    this.refRules.set(ref, ruleName);
    this.rules.set(ruleName, '');
    this.rules.set(ruleName, this.bodyFor(target as JsonSchema, ruleName));
    return ruleName;
  }

  private stringBody(schema: { readonly [keyword: string]: unknown }): string {
    const min = typeof schema.minLength === 'number' ? Math.max(0, Math.floor(schema.minLength)) : 0;
    const max = typeof schema.maxLength === 'number' ? Math.floor(schema.maxLength) : undefined;
    if (min === 0 && max === undefined) return this.primitive('string');
    return `"\\"" ${this.primitive('char')}${repetition(min, max)} "\\"" ${this.primitive('space')}`;
  }

  private arrayBody(schema: { readonly [keyword: string]: unknown }, name: string): string {
    const item = schema.items === undefined ? this.primitive('value') : this.ruleFor(schema.items as JsonSchema, `${name}-item`);
    const min = typeof schema.minItems === 'number' ? Math.max(0, Math.floor(schema.minItems)) : 0;
    const rawMax = typeof schema.maxItems === 'number' ? Math.floor(schema.maxItems) : undefined;
    const max = rawMax !== undefined && rawMax <= MAX_EXPANDED_REPETITION ? Math.max(rawMax, min) : undefined;
    const space = this.primitive('space');
    if (max === 0) return `"[" ${space} "]" ${space}`;
    const rest = `( "," ${space} ${item} )${repetition(Math.max(min - 1, 0), max === undefined ? undefined : max - 1)}`;
    const items = min === 0 ? `( ${item} ${rest} )?` : `${item} ${rest}`;
    return `"[" ${space} ${items} "]" ${space}`;
  }

  private objectBody(schema: { readonly [keyword: string]: unknown }, name: string): string {
    const properties = isObjectSchema(schema.properties as JsonSchema) ? Object.entries(schema.properties as object) : [];
    const space = this.primitive('space');
    if (properties.length === 0) return this.mapBody(schema, name);
    const required = new Set(Array.isArray(schema.required) ? schema.required : []);
    const pairs = properties.map(([key, value]) => ({
      key,
      required: required.has(key),
      rule: this.propertyRule(key, value as JsonSchema, name),
    }));
    const mandatory = pairs.filter((p) => p.required).map((p) => p.rule);
    const optional = pairs.filter((p) => !p.required).map((p) => p.rule);
    let body = [`"{" ${space}`, ...(mandatory.length > 0 ? [mandatory.join(` "," ${space} `)] : [])].join(' ');
    if (optional.length > 0) {
      const choices = optional.map((_, i) => this.optionalTail(optional.slice(i))).join(' | ');
      body += mandatory.length > 0 ? ` ( "," ${space} ( ${choices} ) )?` : ` ( ${choices} )?`;
    }
    return `${body} "}" ${space}`;
  }

  /** An object without listed properties: any keys, values of `additionalProperties` if it is a schema. */
  private mapBody(schema: { readonly [keyword: string]: unknown }, name: string): string {
    const additional = schema.additionalProperties;
    if (!isObjectSchema(additional as JsonSchema)) return this.primitive('object');
    const value = this.ruleFor(additional as JsonSchema, `${name}-value`);
    const space = this.primitive('space');
    const pair = `${this.primitive('string')} ":" ${space} ${value}`;
    return `"{" ${space} ( ${pair} ( "," ${space} ${pair} )* )? "}" ${space}`;
  }

  /** `"key": value` for one property, as its own rule (named after the property). */
  private propertyRule(key: string, value: JsonSchema, name: string): string {
    const valueRule = this.ruleFor(value, `${name}-${key}`);
    const kvName = this.uniqueName(`${ruleNameOf(`${name}-${key}`)}-kv`);
    this.rules.set(kvName, `${gbnfLiteral(JSON.stringify(key))} ${this.primitive('space')} ":" ${this.primitive('space')} ${valueRule}`);
    return kvName;
  }

  /** The first of `kvRules`, then any subset of the rest in order (llama.cpp's optional-property chain). */
  private optionalTail(kvRules: string[]): string {
    const [first, ...rest] = kvRules;
    return rest.length === 0 ? first! : `${first!} ${this.optionalChain(rest)}`;
  }

  /** A rule for "each of `kvRules` or not, in order", shared by every choice that ends with them. */
  private optionalChain(kvRules: string[]): string {
    const [first, ...rest] = kvRules;
    const known = this.chains.get(first!);
    if (known !== undefined) return known;
    // A name of its own: a property literally called `<key>-kv-opt` must not stand in for the chain.
    const chainName = this.uniqueName(`${first!}-opt`);
    this.chains.set(first!, chainName);
    this.rules.set(chainName, '');
    const next = rest.length === 0 ? '' : ` ${this.optionalChain(rest)}`;
    this.rules.set(chainName, `( "," ${this.primitive('space')} ${first!} )?${next}`);
    return chainName;
  }
}

/** GBNF repetition suffix for min..max occurrences (max undefined: unbounded). */
function repetition(min: number, max: number | undefined): string {
  if (max === undefined) return min === 0 ? '*' : `{${min},}`;
  return min === max ? `{${min}}` : `{${min},${max}}`;
}
