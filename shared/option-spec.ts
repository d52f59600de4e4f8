/**
 * The kinds of option the option table (config.ts) declares: each with its schema, its default and
 * the words every error message about it ends with, so every option of a kind is checked alike.
 */
import { AUTO } from './budgets.js';
import { z } from 'zod';

/** How text from env/flags is read: files carry JSON types, env and flags carry strings (a list: comma-separated). */
export type OptionKind = 'integer' | 'boolean' | 'string' | 'enum' | 'list';

export interface OptionSpec<T> {
  kind: OptionKind;
  schema: z.ZodType<T>;
  default: T;
  /** What a valid value is, in words; it ends every error message about this option. */
  allowed: string;
  doc: string;
  /** Options only `semantic supervise` reads. */
  superviseOnly?: boolean;
  /** Keys: an error about the value says its length only, since a list's other keys are valid secrets. */
  secret?: boolean;
}

export function integerOption(defaultValue: number, min: number, max: number, doc: string): OptionSpec<number> {
  return { kind: 'integer', schema: z.number().int().min(min).max(max), default: defaultValue, allowed: `an integer from ${min} to ${max}`, doc };
}

export function booleanOption(defaultValue: boolean, doc: string): OptionSpec<boolean> {
  return { kind: 'boolean', schema: z.boolean(), default: defaultValue, allowed: 'true or false', doc };
}

export function enumOption<const V extends readonly [string, ...string[]]>(values: V, defaultValue: V[number], doc: string): OptionSpec<V[number]> {
  return { kind: 'enum', schema: z.enum(values), default: defaultValue, allowed: `one of ${values.join(', ')}`, doc };
}

/**
 * A cache tier's byte budget: `-1` (the default) sizes it from the machine when the server starts
 * (shared/budgets.ts), so the same config suits a laptop and a large server.
 */
export function budgetOption(max: number, doc: string): OptionSpec<number> {
  return { kind: 'integer', schema: z.number().int().min(AUTO).max(max), default: AUTO, allowed: `-1 (auto) or an integer from 0 to ${max}`, doc };
}

/** Paths and ids end up in logs and HTTP bodies: no control characters (a newline would forge a log line). */
export function textOption(doc: string, maxLength: number, spaces: 'spaces allowed' | 'no spaces'): OptionSpec<string | undefined> {
  const pattern = spaces === 'no spaces' ? /^[^\s\p{Cc}]+$/u : /^[^\p{Cc}]+$/u;
  const kind = spaces === 'no spaces' ? 'without whitespace' : 'without control characters';
  const schema = z.string().min(1).max(maxLength).regex(pattern).optional();
  return { kind: 'string', schema, default: undefined, allowed: `a string of 1 to ${maxLength} characters ${kind}`, doc };
}

/**
 * A list of names without whitespace or commas: a JSON array in a file; comma-separated in the env; in
 * flags, the flag repeated or comma-separated (llama-server's `--alias` takes a comma-separated list too).
 */
export function listOption(doc: string, maxItems: number, maxLength: number): OptionSpec<string[]> {
  const item = z
    .string()
    .min(1)
    .max(maxLength)
    .regex(/^[^\s\p{Cc},]+$/u);
  return { kind: 'list', schema: z.array(item).max(maxItems), default: [], allowed: `up to ${maxItems} names of 1 to ${maxLength} characters without whitespace or commas`, doc };
}

/** An API key: printable ASCII without spaces or commas (commas separate keys in one value). */
const KEY = '[\\x21-\\x2b\\x2d-\\x7e]{8,256}';

export function keyOption(list: boolean, doc: string): OptionSpec<string | undefined> {
  const pattern = new RegExp(list ? `^${KEY}(,${KEY})*$` : `^${KEY}$`);
  const what = 'of 8 to 256 printable characters without spaces or commas';
  return {
    kind: 'string',
    schema: z.string().regex(pattern).optional(),
    default: undefined,
    allowed: list ? `a comma-separated list of keys ${what}` : `a key ${what}`,
    doc,
    secret: true,
  };
}
