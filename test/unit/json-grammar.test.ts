// JSON Schema → GBNF: the structure of the rules (names, alternatives, required vs optional
// properties, escaping). That llama.cpp accepts these grammars and that they constrain a real model
// is checked in test/model/grammar.test.ts.
import t from 'tap';
import { gbnfLiteral, grammarOf, jsonObjectGrammar, jsonSchemaGrammar, schemaRules, SCHEMA_LIMITS } from '../../worker/tools/json-grammar.js';
import { nestsDeeperThan } from '../../shared/json-depth.js';

/** rule name → body, from a grammar's `name ::= body` lines. */
function rulesOf(grammar: string): Map<string, string> {
  const lines = grammar.trimEnd().split('\n');
  return new Map(
    lines.map((line) => {
      const at = line.indexOf(' ::= ');
      return [line.slice(0, at), line.slice(at + 5)];
    }),
  );
}

t.test('json_object mode: root is any object, with the llama.cpp primitives and bounded whitespace', async (t) => {
  const rules = rulesOf(jsonObjectGrammar());
  t.equal(rules.get('root'), 'object');
  t.equal(rules.get('object'), '"{" space ( string ":" space value ("," space string ":" space value)* )? "}" space');
  t.equal(rules.get('space'), '| " " | "\\n" [ \\t]{0,20}');
  t.same([...rules.keys()].sort(), ['array', 'boolean', 'char', 'decimal-part', 'integral-part', 'null', 'number', 'object', 'root', 'space', 'string', 'value']);
  t.notOk(rules.has('integer'), 'only the primitives the grammar uses');
});

t.test('object: required properties in order, then optional ones each optional, nothing unlisted', async (t) => {
  const rules = rulesOf(
    jsonSchemaGrammar({
      type: 'object',
      properties: { city: { enum: ['Paris', 'London'] }, note: { type: 'string' }, days: { type: 'integer' }, tags: { type: 'boolean' } },
      required: ['city', 'days'],
    }),
  );
  t.equal(rules.get('root'), '"{" space root-city-kv "," space root-days-kv ( "," space ( root-note-kv root-tags-kv-opt | root-tags-kv ) )? "}" space');
  t.equal(rules.get('root-city'), '"\\"Paris\\"" space | "\\"London\\"" space', 'one alternative per enum value, as JSON text');
  t.equal(rules.get('root-city-kv'), '"\\"city\\"" space ":" space root-city');
  t.equal(rules.get('root-days'), 'integer');
  t.equal(rules.get('root-tags-kv-opt'), '( "," space root-tags-kv )?');
  t.equal(rules.get('integer'), '("-"? integral-part) space');
});

t.test('only optional properties: the object may be empty, each property at most once, in order', async (t) => {
  const rules = rulesOf(jsonSchemaGrammar({ type: 'object', properties: { a: { type: 'null' }, b: { type: 'number' }, c: {} } }));
  t.equal(rules.get('root'), '"{" space ( root-a-kv root-b-kv-opt | root-b-kv root-c-kv-opt | root-c-kv )? "}" space');
  t.equal(rules.get('root-b-kv-opt'), '( "," space root-b-kv )? root-c-kv-opt', 'a then c without b is allowed');
  t.equal(rules.get('root-c'), 'value', 'a schema without a type is any JSON value');
});

t.test('quotes and backslashes in enum strings and property names are escaped twice: JSON, then GBNF', async (t) => {
  const rules = rulesOf(
    jsonSchemaGrammar({
      type: 'object',
      properties: { 'say "hi"\\': { const: 'a"b\\c\n' } },
      required: ['say "hi"\\'],
    }),
  );
  t.equal(rules.get('root'), '"{" space root-say-hi--kv "}" space', 'rule names keep only letters, digits and dashes');
  t.equal(rules.get('root-say-hi--kv'), '"\\"say \\\\\\"hi\\\\\\"\\\\\\\\\\"" space ":" space root-say-hi-');
  t.equal(rules.get('root-say-hi-'), '"\\"a\\\\\\"b\\\\\\\\c\\\\n\\"" space');
  t.equal(gbnfLiteral('tab\there\r\u0001'), '"tab\\there\\r\\x01"');
});

t.test('enum and const of any JSON values', async (t) => {
  const rules = rulesOf(jsonSchemaGrammar({ enum: [1, true, null, { a: [2] }] }));
  t.equal(rules.get('root'), '"1" space | "true" space | "null" space | "{\\"a\\":[2]}" space');
  t.equal(rulesOf(jsonSchemaGrammar({ const: 42 })).get('root'), '"42" space');
});

t.test('arrays: items, minItems and maxItems as a bounded repetition', async (t) => {
  const bounded = rulesOf(jsonSchemaGrammar({ type: 'array', items: { type: 'string' }, minItems: 1, maxItems: 3 }));
  t.equal(bounded.get('root'), '"[" space root-item ( "," space root-item ){0,2} "]" space');
  t.equal(bounded.get('root-item'), 'string');
  const open = rulesOf(jsonSchemaGrammar({ type: 'array', items: { type: 'integer' } }));
  t.equal(open.get('root'), '"[" space ( root-item ( "," space root-item )* )? "]" space');
  const atLeastTwo = rulesOf(jsonSchemaGrammar({ type: 'array', minItems: 2 }));
  t.equal(atLeastTwo.get('root'), '"[" space value ( "," space value ){1,} "]" space');
  t.equal(rulesOf(jsonSchemaGrammar({ type: 'array', maxItems: 0 })).get('root'), '"[" space "]" space');
  t.equal(
    rulesOf(jsonSchemaGrammar({ type: 'array', maxItems: 100000 })).get('root'),
    '"[" space ( value ( "," space value )* )? "]" space',
    'a huge maxItems is not expanded into rules',
  );
});

t.test('strings: plain, with length bounds, and with pattern/format falling back to any string', async (t) => {
  t.equal(rulesOf(jsonSchemaGrammar({ type: 'string' })).get('root'), 'string');
  t.equal(rulesOf(jsonSchemaGrammar({ type: 'string', minLength: 2, maxLength: 5 })).get('root'), '"\\"" char{2,5} "\\"" space');
  t.equal(rulesOf(jsonSchemaGrammar({ type: 'string', pattern: '^a+$', format: 'email' })).get('root'), 'string');
});

t.test('anyOf / oneOf and type arrays become alternatives', async (t) => {
  const nullable = rulesOf(jsonSchemaGrammar({ type: ['string', 'null'] }));
  t.equal(nullable.get('root'), 'root-string | root-null');
  t.equal(nullable.get('root-string'), 'string');
  t.equal(nullable.get('root-null'), 'null');
  const anyOf = rulesOf(jsonSchemaGrammar({ anyOf: [{ type: 'number' }, { type: 'boolean' }] }));
  t.equal(anyOf.get('root'), 'root-0 | root-1');
  t.equal(anyOf.get('root-1'), 'boolean');
  t.equal(rulesOf(jsonSchemaGrammar({ oneOf: [{ const: 'x' }] })).get('root'), 'root-0');
});

t.test('unsupported keywords and non-object schemas fall back to any JSON value', async (t) => {
  t.equal(rulesOf(jsonSchemaGrammar(true)).get('root'), 'value');
  t.equal(rulesOf(jsonSchemaGrammar({})).get('root'), 'value');
  t.equal(rulesOf(jsonSchemaGrammar({ type: 'toString' })).get('root'), 'value', 'unknown type names, even prototype keys');
  t.equal(rulesOf(jsonSchemaGrammar({ $ref: 'https://example.com/s.json' })).get('root'), 'value');
  t.equal(
    rulesOf(jsonSchemaGrammar({ type: 'object', additionalProperties: { type: 'integer' } })).get('root'),
    '"{" space ( string ":" space root-value ( "," space string ":" space root-value )* )? "}" space',
  );
});

t.test('local $refs get one rule each, so recursive schemas stay finite', async (t) => {
  const rules = rulesOf(
    jsonSchemaGrammar({
      $defs: { Node: { type: 'object', properties: { next: { $ref: '#/$defs/Node' } } } },
      type: 'object',
      properties: { head: { $ref: '#/$defs/Node' } },
      required: ['head'],
    }),
  );
  t.equal(rules.get('root-head'), 'root-ref-Node');
  t.equal(rules.get('root-ref-Node'), '"{" space ( root-ref-Node-next-kv )? "}" space');
  t.equal(rules.get('root-ref-Node-next'), 'root-ref-Node');
});

t.test('embedding: schemaRules names its root rule, grammarOf merges rule sets sharing primitives', async (t) => {
  const weather = schemaRules({ type: 'object', properties: { city: { type: 'string' } }, required: ['city'] }, 'get_weather args');
  const time = schemaRules({ type: 'object', properties: { zone: { type: 'string' } }, required: ['zone'] }, 'get-time-args');
  t.equal(weather.root, 'get-weather-args');
  t.equal(time.root, 'get-time-args');
  const grammar = grammarOf(`"<tool_call>" ( ${weather.root} | ${time.root} )`, weather.rules, time.rules);
  const lines = grammar.trimEnd().split('\n');
  t.equal(lines[0], 'root ::= "<tool_call>" ( get-weather-args | get-time-args )');
  t.equal(lines.filter((line) => line.startsWith('string ::= ')).length, 1, 'shared primitives appear once');
  t.equal(new Set(lines.map((line) => line.split(' ::= ')[0])).size, lines.length, 'no rule defined twice');
  t.equal(schemaRules({ type: 'string' }, 'string').root, 'string-', 'a root name never shadows a primitive');
});

t.test('limits: a schema too deep, too large or with too many values is a 400 naming the field', async (t) => {
  const deep = (levels: number): Record<string, unknown> => (levels === 0 ? { type: 'string' } : { type: 'array', items: deep(levels - 1) });
  t.doesNotThrow(() => jsonSchemaGrammar(deep(SCHEMA_LIMITS.depth - 1)), 'just within the depth limit');
  const refused = (schema: Record<string, unknown>): unknown => {
    try {
      jsonSchemaGrammar(schema, 'response_format.json_schema.schema');
      return 'converted';
    } catch (error) {
      return error;
    }
  };
  t.match(refused(deep(3000)), { code: 'ERR_BAD_REQUEST', param: 'response_format.json_schema.schema', message: /nests more than 32 levels deep/ });
  const props = Object.fromEntries(Array.from({ length: 1500 }, (_, i) => [`p${i}`, { type: 'integer' }]));
  t.match(refused({ type: 'object', properties: props }), { code: 'ERR_BAD_REQUEST', message: /more than 2000 grammar rules/ });
  t.match(refused({ enum: Array.from({ length: 1001 }, (_, i) => i) }), { code: 'ERR_BAD_REQUEST', message: /more than 1000 enum or const values/ });
  t.doesNotThrow(() => jsonSchemaGrammar({ enum: Array.from({ length: 1000 }, (_, i) => i) }), '1,000 values, as OpenAI allows');
});

t.test('body depth: brackets are counted outside strings only', async (t) => {
  t.equal(nestsDeeperThan('[[[1]]]', 3), false);
  t.equal(nestsDeeperThan('[[[[1]]]]', 3), true);
  t.equal(nestsDeeperThan(JSON.stringify({ a: '[[[[[[' }), 3), false, 'brackets inside a string');
  t.equal(nestsDeeperThan(JSON.stringify({ a: 'quote \\" [[[[' }), 3), false, 'an escaped quote does not end the string');
  t.equal(nestsDeeperThan('[{}, {}, {}, {}]', 2), false, 'siblings do not add up');
});

t.test('a property named like a chain rule does not replace the chain', async (t) => {
  const rules = rulesOf(jsonSchemaGrammar({ type: 'object', properties: { a: { type: 'integer' }, b: { type: 'integer' }, 'b-kv-opt': { type: 'string' } } }));
  const chainAfterA = [...rules.entries()].find(([, body]) => body.startsWith('( "," space root-b-kv )?'));
  t.ok(chainAfterA, 'the optional chain after a starts with b');
  t.equal(rules.get('root-b-kv-opt'), 'string', "the property's own value rule keeps its name");
  t.not(chainAfterA?.[0], 'root-b-kv-opt');
});
