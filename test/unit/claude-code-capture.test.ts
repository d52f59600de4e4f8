// How a captured Claude Code request becomes a fixture (bench/claude-code-capture.ts): prose becomes
// common words of the same lengths, so the fixture is as long as the real request; structure, tool
// names, schema keys, enums and cache_control stay; ids become zeroes.
import t from 'tap';
import { anonymize, fillText } from '../../bench/claude-code-capture.js';

t.test('fillText keeps every length, case, digit position, space and punctuation mark', async (t) => {
  const text = 'Use the Bash tool: IMPORTANT, run `ls -la` in /tmp (v2.1.197)\n\n- a list item';
  const filled = fillText(text);
  t.equal(filled.length, text.length);
  t.equal(filled.replace(/[A-Za-z0-9]/g, ''), text.replace(/[A-Za-z0-9]/g, ''), 'everything but letters and digits is unchanged');
  const shape = (s: string) => s.replace(/[0-9]/g, '9').replace(/[A-Za-z]/g, (c) => (c === c.toUpperCase() ? 'X' : 'x'));
  t.equal(shape(filled), shape(text), 'each letter keeps its case, each digit stays a digit');
  t.notMatch(filled, /Bash|IMPORTANT|tool/, 'no word of the original is left');
  t.equal(fillText('abcdefghijklmnopqrstuvwxyz').length, 26, 'words longer than the list still fill their length');
});

t.test('anonymize keeps the request structure and replaces prose and ids', async (t) => {
  const body = {
    model: 'claude-sonnet-4-5',
    system: [
      { type: 'text', text: 'x-anthropic-billing-header: cc_version=2.1.197' },
      { type: 'text', text: 'You are Claude Code', cache_control: { type: 'ephemeral' } },
    ],
    messages: [
      { role: 'user', content: [{ type: 'text', text: 'Say hello' }] },
      { role: 'assistant', content: [{ type: 'tool_use', id: 'toolu_01abc', name: 'Bash', input: { command: 'ls' } }] },
      { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_01abc', content: 'a.txt' }] },
    ],
    tools: [
      {
        name: 'Bash',
        description: 'Runs a command',
        input_schema: { type: 'object', properties: { command: { type: 'string', description: 'The command' }, mode: { enum: ['fast', 'slow'] } }, required: ['command'] },
      },
    ],
    metadata: { user_id: '{"device_id":"ab12","session_id":"9f-3c"}' },
  };
  const filled = anonymize(body) as typeof body;
  t.equal(filled.model, 'claude-sonnet-4-5');
  t.same(filled.system[0], body.system[0], 'the billing header stays');
  t.same(filled.system[1], { type: 'text', text: 'The and Always From', cache_control: { type: 'ephemeral' } });
  t.same(filled.messages[0], { role: 'user', content: [{ type: 'text', text: 'The their' }] });
  t.same(filled.messages[1]!.content[0], { type: 'tool_use', id: '00000_00000', name: 'Bash', input: { command: 'an' } });
  t.same(filled.messages[2]!.content[0], { type: 'tool_result', tool_use_id: '00000_00000', content: 'a.and' });
  t.same(filled.tools[0]!.input_schema, {
    ...body.tools[0]!.input_schema,
    properties: { command: { type: 'string', description: 'The current' }, mode: { enum: ['fast', 'slow'] } },
  });
  t.not(filled.tools[0]!.description, body.tools[0]!.description);
  t.equal(filled.metadata.user_id, '{"device_id":"0000","session_id":"00-00"}');
});
