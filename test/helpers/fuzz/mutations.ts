/**
 * What the fuzzer does to a valid-ish body: a wrong type, a missing or extra field, a huge string,
 * odd unicode, deep nesting or a raw number JSON cannot hold (changes to the value), or a truncated
 * text, stray bytes (invalid UTF-8 among them) or a body that is no request at all (changes to the
 * serialised bytes). A change names its target by index into the body's own nodes (`at` modulo their
 * count), so fast-check can shrink a failure to the one change and the one field that caused it.
 */
import fc from 'fast-check';

export type ValueMutation =
  | { kind: 'wrong-type'; at: number; value: unknown }
  | { kind: 'drop-field'; at: number }
  | { kind: 'extra-field'; at: number; key: string; value: unknown }
  | { kind: 'huge-string'; at: number; length: number; unit: string }
  | { kind: 'odd-unicode'; at: number; text: string }
  | { kind: 'deep-nesting'; at: number; levels: number; container: 'array' | 'object' }
  | { kind: 'raw-number'; at: number; text: string };

export type TextMutation = { kind: 'truncate'; at: number } | { kind: 'insert-bytes'; at: number; bytes: number[] } | { kind: 'replace-body'; body: string };

type Path = (string | number)[];

/** Values no schema field expects all at once: every JSON type, edge numbers, empty containers. */
const oddValue = fc.oneof(
  fc.constantFrom(null, true, false, 0, -1, -0, 1.5, 2 ** 53, -(2 ** 63), 1e308, '', ' ', '0', 'null', [], {}, [null], { '': null }),
  fc.jsonValue({ maxDepth: 3 }),
);

/** Strings tokenizers and JSON encoders trip on: lone surrogates, NUL, BOM, bidi controls, ZWJ emoji, combining marks. */
const oddText = fc.oneof(
  fc.constantFrom(
    '\ud800',
    '\udfff',
    'a\ud83d',
    '\u0000',
    '\ufeff',
    '\u202e\u2066x\u2069',
    '\ufffe\uffff',
    '👩‍👩‍👧‍👦',
    'e\u0301\u0301\u0301',
    '\u00a0\u2028\u2029',
    '<|im_start|>system\n',
    '</s><s>[INST]',
    '{{ raise_exception("x") }}',
    '\\u0000',
    '%s%n%x',
  ),
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.string({ unit: 'grapheme', maxLength: 20 }),
);

/** Raw JSON number texts JSON.parse reads into Infinity, -0 or a lossy double. */
const rawNumber = fc.constantFrom('1e400', '-1e400', '-0', '0.0000000000000000000000001', '123456789012345678901234567890', '1E+2', '-0.0e-0');

export const valueMutation: fc.Arbitrary<ValueMutation> = fc.oneof(
  fc.record({ kind: fc.constant('wrong-type' as const), at: fc.nat(), value: oddValue }),
  fc.record({ kind: fc.constant('drop-field' as const), at: fc.nat() }),
  fc.record({
    kind: fc.constant('extra-field' as const),
    at: fc.nat(),
    key: fc.oneof(fc.string({ maxLength: 12 }), fc.constantFrom('__proto__', 'constructor', 'prototype', 'toString')),
    value: oddValue,
  }),
  fc.record({
    kind: fc.constant('huge-string' as const),
    at: fc.nat(),
    length: fc.integer({ min: 1_000, max: 100_000 }),
    unit: fc.constantFrom('x', 'é', '🤖', ' ', '\u0000', 'ab '),
  }),
  fc.record({ kind: fc.constant('odd-unicode' as const), at: fc.nat(), text: oddText }),
  fc.record({
    kind: fc.constant('deep-nesting' as const),
    at: fc.nat(),
    levels: fc.integer({ min: 2, max: 1_500 }),
    container: fc.constantFrom('array' as const, 'object' as const),
  }),
  fc.record({ kind: fc.constant('raw-number' as const), at: fc.nat(), text: rawNumber }),
);

export const textMutation: fc.Arbitrary<TextMutation> = fc.oneof(
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('insert-bytes' as const), at: fc.nat(), bytes: fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 1, maxLength: 8 }) }),
  fc.record({
    kind: fc.constant('replace-body' as const),
    body: fc.oneof(
      fc.constantFrom('', ' ', 'null', '[]', '"x"', '0', '{}', '{"a":1}{"b":2}', '{"model":"tiny",}', "{'model':'tiny'}", '\ufeff{}', 'model=tiny&messages=hi'),
      fc.string({ maxLength: 64 }),
    ),
  }),
);

/** Every node of a JSON value, root first, with the path to it. */
function nodes(value: unknown, path: Path = [], out: { path: Path; value: unknown }[] = []): { path: Path; value: unknown }[] {
  out.push({ path, value });
  if (Array.isArray(value)) value.forEach((item, i) => nodes(item, [...path, i], out));
  else if (typeof value === 'object' && value !== null) for (const [key, item] of Object.entries(value)) nodes(item, [...path, key], out);
  return out;
}

function pick<T>(items: T[], at: number): T | undefined {
  return items.length === 0 ? undefined : items[at % items.length];
}

/** Sets (or with `undefined`, deletes) the node at `path` in place; the root is returned replaced. */
function setAt(root: unknown, path: Path, value: unknown): unknown {
  if (path.length === 0) return value;
  const parent = path.slice(0, -1).reduce<unknown>((node, key) => (node as Record<string | number, unknown>)[key], root) as Record<string | number, unknown>;
  const key = path[path.length - 1]!;
  if (value === undefined && Array.isArray(parent)) parent.splice(Number(key), 1);
  else if (value === undefined) delete parent[key];
  else parent[key] = value;
  return root;
}

function nest(levels: number, container: 'array' | 'object', inner: unknown): unknown {
  let value = inner;
  for (let i = 0; i < levels; i++) value = container === 'array' ? [value] : { a: value };
  return value;
}

/**
 * The body with the change made. A raw number is left as a placeholder string, replaced in the text
 * by `serialise` (JSON.stringify cannot write 1e400). Returns the placeholders made.
 */
export function applyValueMutation(body: unknown, mutation: ValueMutation, placeholders: Map<string, string>): unknown {
  const all = nodes(body);
  const containers = all.filter((node) => typeof node.value === 'object' && node.value !== null && !Array.isArray(node.value));
  const strings = all.filter((node) => typeof node.value === 'string');
  const nonRoot = all.filter((node) => node.path.length > 0);
  switch (mutation.kind) {
    case 'wrong-type':
      return setAt(body, pick(all, mutation.at)?.path ?? [], structuredClone(mutation.value));
    case 'drop-field': {
      const target = pick(nonRoot, mutation.at);
      return target === undefined ? body : setAt(body, target.path, undefined);
    }
    case 'extra-field': {
      const target = pick(containers, mutation.at);
      if (target !== undefined) Object.defineProperty(target.value, mutation.key, { value: structuredClone(mutation.value), enumerable: true, configurable: true, writable: true });
      return body;
    }
    case 'huge-string':
      return setAt(body, pick(strings.length > 0 ? strings : all, mutation.at)?.path ?? [], mutation.unit.repeat(Math.ceil(mutation.length / mutation.unit.length)));
    case 'odd-unicode':
      return setAt(body, pick(strings.length > 0 ? strings : all, mutation.at)?.path ?? [], mutation.text);
    case 'deep-nesting': {
      const target = pick(all, mutation.at);
      return setAt(body, target?.path ?? [], nest(mutation.levels, mutation.container, target?.value ?? null));
    }
    case 'raw-number': {
      const placeholder = `__raw_number_${placeholders.size}__`;
      placeholders.set(`"${placeholder}"`, mutation.text);
      return setAt(body, pick(nonRoot, mutation.at)?.path ?? [], placeholder);
    }
  }
}

export function applyTextMutation(bytes: Buffer, mutation: TextMutation): Buffer {
  switch (mutation.kind) {
    case 'truncate':
      return bytes.subarray(0, mutation.at % Math.max(bytes.length, 1));
    case 'insert-bytes': {
      const at = mutation.at % (bytes.length + 1);
      return Buffer.concat([bytes.subarray(0, at), Buffer.from(mutation.bytes), bytes.subarray(at)]);
    }
    case 'replace-body':
      return Buffer.from(mutation.body);
  }
}
