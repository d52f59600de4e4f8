// Agent ids: precedence of the sources, validation naming the header or field, derived ids.
import t from 'tap';
import { checkAgentId, conversationAgentId, resolveAgent, resolveAgentId } from '../../shared/agent-id.js';

const messages = [
  { role: 'system', content: 'You are terse.' },
  { role: 'user', content: 'Hi' },
  { role: 'assistant', content: 'Hello.' },
  { role: 'user', content: 'More' },
];
const headers = (entries: [string, string][]) => new Map(entries);

t.test('first found wins: X-Agent-ID, X-Session-ID, body field, derived', async (t) => {
  const user = { value: 'body-user', param: 'user' };
  t.equal(
    resolveAgentId({
      headers: headers([
        ['x-agent-id', 'a1'],
        ['x-session-id', 's1'],
      ]),
      bodyField: user,
      messages,
    }),
    'a1',
  );
  t.equal(resolveAgentId({ headers: headers([['x-session-id', 's1']]), bodyField: user, messages }), 's1');
  t.equal(resolveAgentId({ headers: headers([]), bodyField: user, messages }), 'body-user');
  t.equal(resolveAgentId({ headers: headers([]), bodyField: { value: undefined, param: 'user' }, messages }), conversationAgentId(messages));
});

t.test('only an id no client gave is derived: its requests need not keep their order', async (t) => {
  const none = { value: undefined, param: 'user' };
  t.same(resolveAgent({ headers: headers([]), bodyField: none, messages }), { agentId: conversationAgentId(messages), derived: true });
  t.same(resolveAgent({ headers: headers([['x-agent-id', 'a1']]), bodyField: none, messages }), { agentId: 'a1', derived: false });
  t.same(resolveAgent({ headers: headers([['x-session-id', 's1']]), bodyField: none, messages }), { agentId: 's1', derived: false });
  t.same(resolveAgent({ headers: headers([]), bodyField: { value: 'u1', param: 'user' }, messages }), { agentId: 'u1', derived: false });
  const opaque = resolveAgent({ headers: headers([]), bodyField: { value: 'user id with spaces', param: 'metadata.user_id', opaque: true }, messages });
  t.equal(opaque.derived, false, 'a hashed metadata.user_id still names the agent');
  t.match(opaque.agentId, /^user-[0-9a-f]{16}$/);
});

t.test('the derived id depends on the opening only, so a longer history keeps it', async (t) => {
  const id = conversationAgentId(messages);
  t.match(id, /^conv-[0-9a-f]{16}$/);
  t.equal(conversationAgentId(messages.slice(0, 2)), id, 'same opening, shorter history');
  t.not(conversationAgentId([{ role: 'user', content: 'Hi!' }]), conversationAgentId([{ role: 'user', content: 'Hi' }]));
});

t.test('invalid ids are 400s naming the header or field', async (t) => {
  const cases: [Map<string, string>, { value: string; param: string } | undefined, string][] = [
    [headers([['x-agent-id', '']]), undefined, 'X-Agent-ID'],
    [headers([['x-agent-id', '.hidden']]), undefined, 'X-Agent-ID'],
    [headers([['x-agent-id', '../../etc/passwd']]), undefined, 'X-Agent-ID'],
    [headers([['x-session-id', 'a'.repeat(129)]]), undefined, 'X-Session-ID'],
    [headers([]), { value: 'has space', param: 'user' }, 'user'],
    [headers([]), { value: 'ünïcode', param: 'metadata.user_id' }, 'metadata.user_id'],
  ];
  for (const [h, bodyField, param] of cases) {
    t.throws(() => resolveAgentId({ headers: h, ...(bodyField ? { bodyField } : {}), messages }), { code: 'ERR_BAD_REQUEST', param }, param);
  }
  t.equal(resolveAgentId({ headers: headers([['x-agent-id', 'a'.repeat(128)]]), messages }).length, 128, '128 characters is fine');
  t.equal(resolveAgentId({ headers: headers([['x-agent-id', 'team.alpha:agent-7_x']]), messages }), 'team.alpha:agent-7_x');
});

t.test('a header id with bytes outside ASCII is refused, never trimmed into another agent', async (t) => {
  // node:http decodes a header value one char per byte (latin1): `🤖agent` sent as UTF-8 arrives as
  // four chars U+00F0 U+009F U+00A4 U+0096, then `agent`. None may be dropped, or two ids would merge.
  const latin1 = (text: string): string => Buffer.from(text, 'utf8').toString('latin1');
  const values = [
    latin1('🤖agent'),
    latin1('agent🤖'),
    latin1('ag🤖ent'),
    latin1('agé'),
    '\u00e9',
    'agent\u00a0',
    'agent\n',
    '\u0000agent',
    'agent\u007f',
    'a\ud83eb',
    '\u212aelvin',
  ];
  for (const value of values) {
    t.throws(() => resolveAgentId({ headers: headers([['x-agent-id', value]]), messages }), { code: 'ERR_BAD_REQUEST', param: 'X-Agent-ID' }, JSON.stringify(value));
  }
  t.equal(latin1('🤖agent').length, 9, 'each UTF-8 byte is one char');
  t.throws(() => checkAgentId(latin1('🤖agent'), 'X-Agent-ID'), { message: /character 0 is U\+00F0, not allowed/ }, 'the message names the first byte refused');
  t.throws(() => checkAgentId('agent\u00a0', 'X-Session-ID'), { message: /character 5 is U\+00A0/ });
  t.throws(() => checkAgentId('.hidden', 'X-Agent-ID'), { message: /must not start with '\.'; got "\.hidden"$/ }, 'a leading dot names no character: each is in the alphabet');
});
