// Tool-call parsing per model family on outputs those families really write, streamed at every split
// point; malformed call syntax stays text. And the grammar tool_choice forces, per format.
import t from 'tap';
import { parseToolCalls, ToolCallStream, type ParsedToolCall } from '../../worker/tools/tool-calls.js';
import { toolChoiceGrammar, toolsForPrompt } from '../../worker/tools/tool-choice.js';
import type { ToolFormat } from '../../worker/tools/format.js';

interface Recorded {
  name: string;
  format: ToolFormat;
  output: string;
  text: string;
  calls: ParsedToolCall[];
}

const weather = (location: string, unit?: string): ParsedToolCall => ({
  name: 'get_current_weather',
  arguments: JSON.stringify(unit === undefined ? { location } : { location, unit }),
});

/** Outputs as Qwen 2.5, Hermes 2 Pro, Llama 3.1/3.2 and Mistral v0.3 / Nemo / Small 3.2 write them (control tokens unrendered where the engine drops them). */
export const recorded: Recorded[] = [
  {
    name: 'qwen2.5: one call, nothing else',
    format: 'hermes',
    output: '<tool_call>\n{"name": "get_current_weather", "arguments": {"location": "San Francisco, CA", "unit": "celsius"}}\n</tool_call>',
    text: '',
    calls: [weather('San Francisco, CA', 'celsius')],
  },
  {
    name: 'qwen2.5: parallel calls on separate lines',
    format: 'hermes',
    output:
      '<tool_call>\n{"name": "get_current_weather", "arguments": {"location": "Paris"}}\n</tool_call>\n' +
      '<tool_call>\n{"name": "get_current_weather", "arguments": {"location": "London"}}\n</tool_call>',
    text: '',
    calls: [weather('Paris'), weather('London')],
  },
  {
    name: 'qwen2.5: content before the call',
    format: 'hermes',
    output: 'Let me check the weather for you.\n\n<tool_call>\n{"name": "get_current_weather", "arguments": {"location": "Tokyo"}}\n</tool_call>',
    text: 'Let me check the weather for you.',
    calls: [weather('Tokyo')],
  },
  {
    name: 'hermes 2 pro: arguments first',
    format: 'hermes',
    output: '<tool_call>\n{"arguments": {"symbol": "TSLA"}, "name": "get_stock_fundamentals"}\n</tool_call>',
    text: '',
    calls: [{ name: 'get_stock_fundamentals', arguments: '{"symbol":"TSLA"}' }],
  },
  {
    name: 'hermes: arguments written as a JSON string',
    format: 'hermes',
    output: '<tool_call>\n{"name": "lookup", "arguments": "{\\"id\\": 7}"}\n</tool_call>',
    text: '',
    calls: [{ name: 'lookup', arguments: '{"id":7}' }],
  },
  {
    name: 'hermes: plain answer with markup-like text',
    format: 'hermes',
    output: 'Use a < b and <b>bold</b>; a <tool_ call> is not a call.\n',
    text: 'Use a < b and <b>bold</b>; a <tool_ call> is not a call.\n',
    calls: [],
  },
  {
    name: 'hermes: malformed JSON stays text',
    format: 'hermes',
    output: 'Sure.\n<tool_call>\n{"name": "get_current_weather", "arguments": {location: Paris}}\n</tool_call>',
    text: 'Sure.\n<tool_call>\n{"name": "get_current_weather", "arguments": {location: Paris}}\n</tool_call>',
    calls: [],
  },
  {
    name: 'hermes: unclosed call at the end of generation is still a call',
    format: 'hermes',
    output: '<tool_call>\n{"name": "get_current_weather", "arguments": {"location": "Oslo"}}\n',
    text: '',
    calls: [weather('Oslo')],
  },
  {
    name: 'llama3.1: JSON call (python_tag unrendered)',
    format: 'llama3',
    output: '{"name": "get_current_weather", "parameters": {"location": "San Francisco, CA", "unit": "fahrenheit"}}',
    text: '',
    calls: [weather('San Francisco, CA', 'fahrenheit')],
  },
  {
    name: 'llama3.1: with <|python_tag|> rendered, two calls separated by ;',
    format: 'llama3',
    output: '<|python_tag|>{"name": "get_current_weather", "parameters": {"location": "Paris"}}; {"name": "get_current_weather", "parameters": {"location": "Rome"}}',
    text: '',
    calls: [weather('Paris'), weather('Rome')],
  },
  {
    name: 'llama3.2: call followed by a newline and a second call',
    format: 'llama3',
    output: '{"type": "function", "name": "get_current_weather", "parameters": {"location": "Berlin"}}\n{"name": "get_current_weather", "parameters": {"location": "Madrid"}}',
    text: '',
    calls: [weather('Berlin'), weather('Madrid')],
  },
  {
    name: 'llama3: JSON that is not a call stays text',
    format: 'llama3',
    output: '{"answer": 42}',
    text: '{"answer": 42}',
    calls: [],
  },
  {
    name: 'llama3: a call mid-answer is not a call',
    format: 'llama3',
    output: 'You could call {"name": "get_current_weather", "parameters": {}} yourself.',
    text: 'You could call {"name": "get_current_weather", "parameters": {}} yourself.',
    calls: [],
  },
  {
    name: 'mistral v0.3: [TOOL_CALLS] unrendered, leading space',
    format: 'mistral',
    output: ' [{"name": "get_current_weather", "arguments": {"location": "Paris, France", "unit": "celsius"}}]',
    text: '',
    calls: [weather('Paris, France', 'celsius')],
  },
  {
    name: 'mistral nemo: [TOOL_CALLS] rendered, two calls with ids',
    format: 'mistral',
    output:
      '[TOOL_CALLS][{"name": "get_current_weather", "arguments": {"location": "Paris"}, "id": "a1b2c3d4e"}, {"name": "get_current_weather", "arguments": {"location": "Lyon"}, "id": "f5g6h7i8j"}]',
    text: '',
    calls: [weather('Paris'), weather('Lyon')],
  },
  {
    name: 'mistral small 3.2: name[ARGS]{…} after text',
    format: 'mistral',
    output: 'Checking.[TOOL_CALLS]get_current_weather[ARGS]{"location": "Nice"}',
    text: 'Checking.',
    calls: [weather('Nice')],
  },
  {
    name: 'mistral: a bracketed answer is text',
    format: 'mistral',
    output: '[1] See the footnote.',
    text: '[1] See the footnote.',
    calls: [],
  },
  {
    name: 'llama3: a JSON answer with a name field but no arguments is text, not a call',
    format: 'llama3',
    output: '{"name": "Bob", "age": 3}',
    text: '{"name": "Bob", "age": 3}',
    calls: [],
  },
  {
    name: 'mistral: array of non-calls is text',
    format: 'mistral',
    output: '[{"city": "Paris"}]',
    text: '[{"city": "Paris"}]',
    calls: [],
  },
];

/** Streams `output` in the given pieces and joins what came out. */
function streamed(format: ToolFormat, pieces: string[]): { text: string; calls: ParsedToolCall[] } {
  const stream = new ToolCallStream(format);
  const result = { text: '', calls: [] as ParsedToolCall[] };
  for (const piece of [...pieces.map((p) => stream.push(p)), stream.finish()]) {
    result.text += piece.text;
    result.calls.push(...piece.calls);
  }
  return result;
}

t.test('recorded outputs parse to their calls and content', async (t) => {
  for (const sample of recorded) t.same(parseToolCalls(sample.format, sample.output), { text: sample.text, calls: sample.calls }, sample.name);
});

t.test('streaming split at every character boundary gives the whole-output result', async (t) => {
  for (const sample of recorded) {
    const whole = JSON.stringify({ text: sample.text, calls: sample.calls });
    const badSplits: number[] = [];
    for (let split = 0; split <= sample.output.length; split++) {
      const result = streamed(sample.format, [sample.output.slice(0, split), sample.output.slice(split)]);
      if (JSON.stringify(result) !== whole) badSplits.push(split);
    }
    t.same(badSplits, [], `${sample.name}: every split point`);
    t.equal(JSON.stringify(streamed(sample.format, [...sample.output])), whole, `${sample.name}: one character at a time`);
  }
});

t.test('text that cannot start a call is shown at once; a possible opening is withheld', async (t) => {
  const stream = new ToolCallStream('hermes');
  t.same(stream.push('Hello'), { text: 'Hello', calls: [] });
  t.same(stream.push(' world <tool'), { text: ' world', calls: [] }, 'trailing space and "<tool" wait');
  t.same(stream.push('_call>\n{"name": "f", "arguments": {}}'), { text: '', calls: [] });
  t.same(stream.push('\n</tool_call>'), { text: '', calls: [{ name: 'f', arguments: '{}' }] }, 'the call completes with its closing tag');
  t.same(stream.push('\nDone.'), { text: 'Done.', calls: [] }, 'whitespace after a call is not content');
  t.same(stream.finish(), { text: '', calls: [] });
});

t.test('llama3 withholds an output that starts like a call until it is settled', async (t) => {
  const stream = new ToolCallStream('llama3');
  t.same(stream.push('{"answer": '), { text: '', calls: [] });
  t.same(stream.push('42}'), { text: '{"answer": 42}', calls: [] }, 'a complete object that is no call is released');
  const plain = new ToolCallStream('llama3');
  t.same(plain.push('Hi {there}'), { text: 'Hi {there}', calls: [] }, 'text that starts otherwise is shown at once');
});

t.test('push after finish is a programming error', async (t) => {
  const stream = new ToolCallStream('hermes');
  stream.finish();
  t.throws(() => stream.push('x'));
  t.same(stream.finish(), { text: '', calls: [] });
});

const tools = [{ name: 'get_current_weather', parameters: { type: 'object', properties: { unit: { enum: ['celsius', 'fahrenheit'] } }, required: ['unit'] } }, { name: 'ping' }];

t.test('tool_choice: auto and none force nothing; none hides the tools', async (t) => {
  t.equal(toolChoiceGrammar('hermes', tools, { kind: 'auto' }), undefined);
  t.equal(toolChoiceGrammar('hermes', tools, { kind: 'none' }), undefined);
  t.same(toolsForPrompt(tools, { kind: 'none' }), []);
  t.same(toolsForPrompt(tools, { kind: 'auto' }), tools);
  t.same(toolsForPrompt(tools, { kind: 'required' }), tools);
});

t.test("tool_choice: a named tool is forced in the model's syntax with its schema", async (t) => {
  const grammar = toolChoiceGrammar('hermes', tools, { kind: 'tool', name: 'get_current_weather' }) ?? '';
  t.match(grammar, /^root ::= \("<tool_call>\\n\{\\"name\\": \\"get_current_weather\\", \\"arguments\\": " call-0-arguments "\}\\n<\/tool_call>"\)\n/);
  t.match(grammar, /"\\"celsius\\""/, 'the enum reaches the grammar');
  t.notMatch(grammar, /ping/, 'other tools are not allowed');
  t.match(toolChoiceGrammar('llama3', tools, { kind: 'tool', name: 'ping' }) ?? '', /^root ::= \("\{\\"name\\": \\"ping\\", \\"parameters\\": " call-0-arguments "\}"\)/);
  t.match(
    toolChoiceGrammar('mistral', tools, { kind: 'tool', name: 'ping' }) ?? '',
    /^root ::= \("\[TOOL_CALLS\]\[\{\\"name\\": \\"ping\\", \\"arguments\\": " call-0-arguments "\}\]"\)/,
  );
});

t.test('tool_choice: required allows any one tool', async (t) => {
  const grammar = toolChoiceGrammar('hermes', tools, { kind: 'required' }) ?? '';
  t.match(grammar, /^root ::= \(.*get_current_weather.*call-0-arguments.*\) \| \(.*ping.*call-1-arguments.*\)\n/);
  t.throws(() => toolChoiceGrammar('hermes', tools, { kind: 'tool', name: 'missing' }));
});

t.test("the schema limits hold for all of a request's tools together", async (t) => {
  const tool = (name: string) => ({ name, parameters: { type: 'object', properties: { x: { enum: Array.from({ length: 600 }, (_, i) => `v${i}`) } }, required: ['x'] } });
  t.doesNotThrow(() => toolChoiceGrammar('hermes', [tool('a')], { kind: 'required' }), 'one tool of 600 values');
  let error: unknown;
  try {
    toolChoiceGrammar('hermes', [tool('a'), tool('b')], { kind: 'required' });
  } catch (caught) {
    error = caught;
  }
  t.match(error, { code: 'ERR_BAD_REQUEST', param: 'tools', message: /more than 1000 enum or const values/ }, 'two such tools: 1,200 values');
});
