/**
 * A fast-check arbitrary from a JSON Schema, so the fuzzer's "valid-ish" bodies follow the request
 * schemas themselves (zod's `z.toJSONSchema` of worker/api's schemas) instead of a hand copy that
 * drifts when a field is added. Only the subset zod emits is read: type, const, enum, anyOf/oneOf,
 * properties/required/additionalProperties, items/minItems/maxItems, string lengths and patterns,
 * number bounds. What JSON Schema cannot say (zod refinements such as "logit_bias must be empty",
 * "tool names unique") is left out, which is why the bodies are valid-ish rather than valid.
 *
 * Sizes are kept small on purpose (short strings, at most 3 items, optional fields mostly absent): a
 * valid body reaches the model, and the fuzzer's budget goes on variety, not on long prompts.
 */
import fc from 'fast-check';

export type JsonSchema = {
  type?: string | string[];
  const?: unknown;
  enum?: unknown[];
  anyOf?: JsonSchema[];
  oneOf?: JsonSchema[];
  properties?: Record<string, JsonSchema>;
  required?: string[];
  additionalProperties?: JsonSchema | boolean;
  items?: JsonSchema;
  minItems?: number;
  maxItems?: number;
  minLength?: number;
  maxLength?: number;
  pattern?: string;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  exclusiveMaximum?: number;
  $ref?: string;
  $defs?: Record<string, JsonSchema>;
};

/** Replaces the arbitrary of every property of that name, at any depth (e.g. `model` → the served id most of the time). */
export type Overrides = Record<string, fc.Arbitrary<unknown>>;

/** Marks an optional property left out; removed from the generated object. */
const absent = Symbol('absent');

const shortString = fc.string({ maxLength: 12 });
const anyJson = fc.jsonValue({ maxDepth: 2 });

/** An optional property is present one time in four, so most bodies carry a few fields, not forty. */
function optional(arbitrary: fc.Arbitrary<unknown>): fc.Arbitrary<unknown> {
  return fc.oneof({ weight: 3, arbitrary: fc.constant(absent) }, { weight: 1, arbitrary });
}

export function schemaArbitrary(root: JsonSchema, overrides: Overrides = {}): fc.Arbitrary<unknown> {
  return arbitraryOf(root, root, 0, overrides);
}

function arbitraryOf(schema: JsonSchema, root: JsonSchema, depth: number, overrides: Overrides): fc.Arbitrary<unknown> {
  if (depth > 12) return fc.constant(null);
  if (schema.$ref !== undefined) return arbitraryOf(resolveRef(root, schema.$ref), root, depth + 1, overrides);
  if (schema.const !== undefined) return fc.constant(schema.const);
  if (schema.enum !== undefined) return fc.constantFrom(...schema.enum);
  const branches = schema.anyOf ?? schema.oneOf;
  if (branches !== undefined) return fc.oneof(...branches.map((branch) => arbitraryOf(branch, root, depth + 1, overrides)));
  if (Array.isArray(schema.type)) return fc.oneof(...schema.type.map((type) => arbitraryOf({ ...schema, type }, root, depth + 1, overrides)));
  switch (schema.type) {
    case 'object':
      return objectArbitrary(schema, root, depth, overrides);
    case 'array':
      return arrayArbitrary(schema, root, depth, overrides);
    case 'string':
      return stringArbitrary(schema);
    case 'integer':
      return fc.integer({ min: lowerBound(schema, 1), max: upperBound(schema, 1) });
    case 'number':
      return numberArbitrary(schema);
    case 'boolean':
      return fc.boolean();
    case 'null':
      return fc.constant(null);
    default:
      return anyJson;
  }
}

function resolveRef(root: JsonSchema, ref: string): JsonSchema {
  const name = ref.replace(/^#\/\$defs\//, '');
  return root.$defs?.[name] ?? {};
}

function objectArbitrary(schema: JsonSchema, root: JsonSchema, depth: number, overrides: Overrides): fc.Arbitrary<unknown> {
  const properties = Object.entries(schema.properties ?? {});
  if (properties.length === 0) {
    const values = typeof schema.additionalProperties === 'object' ? arbitraryOf(schema.additionalProperties, root, depth + 1, overrides) : anyJson;
    return fc.dictionary(shortString, values, { maxKeys: 3 });
  }
  const required = new Set(schema.required ?? []);
  const fields: Record<string, fc.Arbitrary<unknown>> = {};
  for (const [name, property] of properties) {
    const value = overrides[name] ?? arbitraryOf(property, root, depth + 1, overrides);
    fields[name] = required.has(name) ? value : optional(value);
  }
  return fc.record(fields).map((record) => Object.fromEntries(Object.entries(record).filter(([, value]) => value !== absent)));
}

function arrayArbitrary(schema: JsonSchema, root: JsonSchema, depth: number, overrides: Overrides): fc.Arbitrary<unknown> {
  const minLength = schema.minItems ?? 0;
  const maxLength = Math.max(minLength, Math.min(schema.maxItems ?? 3, 3));
  return fc.array(arbitraryOf(schema.items ?? {}, root, depth + 1, overrides), { minLength, maxLength });
}

function stringArbitrary(schema: JsonSchema): fc.Arbitrary<string> {
  if (schema.pattern !== undefined) return fc.stringMatching(new RegExp(schema.pattern));
  const minLength = schema.minLength ?? 0;
  return fc.string({ minLength, maxLength: Math.max(minLength, Math.min(schema.maxLength ?? 12, 12)) });
}

/** Integer bounds, kept near zero: a huge max_tokens or top_k tells nothing a small one does not. */
function lowerBound(schema: JsonSchema, step: number): number {
  if (schema.exclusiveMinimum !== undefined) return Math.max(schema.exclusiveMinimum + step, -1000);
  return Math.max(schema.minimum ?? -1000, -1000);
}

/** At most 1000, or 1000 above a higher minimum (thinking's budget_tokens starts at 1024). */
function upperBound(schema: JsonSchema, step: number): number {
  const cap = Math.max(1000, (schema.minimum ?? schema.exclusiveMinimum ?? 0) + 1000);
  if (schema.exclusiveMaximum !== undefined) return Math.min(schema.exclusiveMaximum - step, cap);
  return Math.min(schema.maximum ?? cap, cap);
}

function numberArbitrary(schema: JsonSchema): fc.Arbitrary<number> {
  return fc.double({
    min: schema.exclusiveMinimum ?? schema.minimum ?? -1000,
    max: schema.exclusiveMaximum ?? schema.maximum ?? 1000,
    minExcluded: schema.exclusiveMinimum !== undefined,
    maxExcluded: schema.exclusiveMaximum !== undefined,
    noNaN: true,
    noDefaultInfinity: true,
  });
}
