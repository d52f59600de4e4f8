// parallel_tool_calls: false keeps only the first of the calls a model writes, whether the output
// arrives whole or streamed, and leaves the text alone.
import t from 'tap';
import { firstCallOnly } from '../../worker/api/openai/output.js';
import { ToolCallStream } from '../../worker/tools/tool-calls.js';

/** Recorded Hermes output: two calls in one turn (Qwen 2.5 does this for two cities). */
const twoCalls =
  'Let me check both.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>\n' +
  '<tool_call>\n{"name": "get_weather", "arguments": {"city": "London"}}\n</tool_call>';

function read(pieces: string[], single: boolean): { text: string; calls: { name: string; arguments: string }[] } {
  const stream = new ToolCallStream('hermes');
  const reader = single ? firstCallOnly(stream) : stream;
  const outputs = [...pieces.map((piece) => reader.push(piece)), reader.finish()];
  return { text: outputs.map((o) => o.text).join(''), calls: outputs.flatMap((o) => o.calls) };
}

t.test('without the limit both calls come back', async (t) => {
  t.same(
    read([twoCalls], false).calls.map((c) => c.arguments),
    ['{"city":"Paris"}', '{"city":"London"}'],
  );
});

t.test('with parallel_tool_calls false only the first, whole or streamed a character at a time', async (t) => {
  for (const pieces of [[twoCalls], [...twoCalls]]) {
    const { text, calls } = read(pieces, true);
    t.same(calls, [{ name: 'get_weather', arguments: '{"city":"Paris"}' }]);
    t.equal(text, 'Let me check both.');
  }
});
