// A reasoning model's output as Anthropic content blocks (thinking block first, with its thinking and
// signature deltas, then the answer's blocks), and thinking blocks sent back: their text is the
// turn's reasoning, and a block this server signed must come back unmodified.
import t from 'tap';
import { BlockStream, outputBlocks, type StreamEvent } from '../../worker/api/anthropic/blocks.js';
import { checkThinkingBlock, thinkingSignature } from '../../worker/api/anthropic/thinking.js';
import { chatMessages } from '../../worker/api/anthropic/content.js';
import { parseMessagesRequest } from '../../worker/api/anthropic/schema.js';
import { ErrorCode, SemanticError } from '../../shared/errors.js';
import type { ReasoningStart } from '../../worker/tools/reasoning.js';
import type { CallParsing } from '../../worker/api/anthropic/blocks.js';

function streamed(deltas: string[], start: ReasoningStart, parsing?: CallParsing): StreamEvent[] {
  const events: StreamEvent[] = [];
  const stream = new BlockStream((event) => events.push(event), parsing, start);
  stream.start();
  for (const delta of deltas) stream.push(delta);
  stream.finish();
  return events;
}

t.test('the signature is a hash of the thinking text: stable, and different for a different text', async (t) => {
  t.equal(thinkingSignature('a'), thinkingSignature('a'));
  t.not(thinkingSignature('a'), thinkingSignature('b'));
  t.match(thinkingSignature(''), /^semantic\.v1\.[A-Za-z0-9_-]{43}$/);
});

t.test('a prompt that opened the block: the thinking block opens at once, its deltas, the signature before its stop, then the text block', async (t) => {
  const events = streamed(['Hmm', ', sky.\n</th', 'ink>\n\nBlue', '.'], 'reasoning');
  t.strictSame(events, [
    { type: 'content_block_start', index: 0, content_block: { type: 'thinking', thinking: '', signature: '' } },
    { type: 'ping' },
    { type: 'content_block_delta', index: 0, delta: { type: 'thinking_delta', thinking: 'Hmm' } },
    { type: 'content_block_delta', index: 0, delta: { type: 'thinking_delta', thinking: ', sky.' } },
    { type: 'content_block_delta', index: 0, delta: { type: 'signature_delta', signature: thinkingSignature('Hmm, sky.') } },
    { type: 'content_block_stop', index: 0 },
    { type: 'content_block_start', index: 1, content_block: { type: 'text', text: '' } },
    { type: 'content_block_delta', index: 1, delta: { type: 'text_delta', text: 'Blue' } },
    { type: 'content_block_delta', index: 1, delta: { type: 'text_delta', text: '.' } },
    { type: 'content_block_stop', index: 1 },
  ]);
  t.strictSame(outputBlocks('Hmm, sky.\n</think>\n\nBlue.', undefined, 'reasoning'), [
    { type: 'thinking', thinking: 'Hmm, sky.', signature: thinkingSignature('Hmm, sky.') },
    { type: 'text', text: 'Blue.' },
  ]);
});

t.test('output that never leaves the block: the thinking block, then an empty text block', async (t) => {
  t.strictSame(outputBlocks('all thought', undefined, 'reasoning'), [
    { type: 'thinking', thinking: 'all thought', signature: thinkingSignature('all thought') },
    { type: 'text', text: '' },
  ]);
});

t.test('a template where the model may open the block: a thinking block only if it does', async (t) => {
  t.strictSame(outputBlocks('<think>\nx\n</think>\n\ny', undefined, 'may-open'), [
    { type: 'thinking', thinking: 'x', signature: thinkingSignature('x') },
    { type: 'text', text: 'y' },
  ]);
  t.strictSame(outputBlocks('y', undefined, 'may-open'), [{ type: 'text', text: 'y' }]);
  t.strictSame(outputBlocks('y', undefined, 'answer'), [{ type: 'text', text: 'y' }], 'no reasoning: the blocks as before');
});

t.test('tool calls are read from the answer only: a call written inside the think block is thinking', async (t) => {
  const call = '<tool_call>\n{"name": "f", "arguments": {"a": 1}}\n</tool_call>';
  const blocks = outputBlocks(`maybe ${call}</think>${call}`, { format: 'hermes', maxCalls: Infinity }, 'reasoning');
  t.equal(blocks.length, 2);
  t.strictSame(blocks[0], { type: 'thinking', thinking: `maybe ${call}`, signature: thinkingSignature(`maybe ${call}`) });
  t.match(blocks[1], { type: 'tool_use', name: 'f', input: { a: 1 } });
  const events = streamed([`x</think>${call}`], 'reasoning', { format: 'hermes', maxCalls: Infinity });
  t.strictSame(
    events.filter((e) => e.type === 'content_block_start').map((e) => [e.index, (e.content_block as { type: string }).type]),
    [
      [0, 'thinking'],
      [1, 'tool_use'],
    ],
  );
});

const echoed = (block: Record<string, unknown>) =>
  parseMessagesRequest({
    model: 'm',
    max_tokens: 8,
    messages: [
      { role: 'user', content: 'hi' },
      { role: 'assistant', content: [block, { type: 'text', text: 'Hello.' }] },
      { role: 'user', content: 'again' },
    ],
  });

t.test("a thinking block sent back: its text is the turn's reasoning; ours must match its signature, others are taken as they are", async (t) => {
  const signed = { type: 'thinking', thinking: 'Let me think.', signature: thinkingSignature('Let me think.') };
  t.strictSame(chatMessages(echoed(signed))[1], { role: 'assistant', content: 'Hello.', reasoning: 'Let me think.' });
  t.strictSame(chatMessages(echoed({ ...signed, signature: 'EqoBCkgIBxABGAIiQL' }))[1]?.reasoning, 'Let me think.', "a signature of another server's form");
  t.strictSame(chatMessages(echoed({ type: 'thinking', thinking: '' }))[1], { role: 'assistant', content: 'Hello.' }, 'empty thinking: no reasoning');
  try {
    chatMessages(echoed({ ...signed, thinking: 'Let me think again.' }));
    t.fail('a modified block must be refused');
  } catch (error) {
    t.ok(error instanceof SemanticError && error.code === ErrorCode.BadRequest);
    t.equal((error as SemanticError).message, 'messages.1.content.0: Invalid `signature` in `thinking` block', "the real API's words");
    t.equal((error as SemanticError).param, 'messages.1.content.0.signature');
  }
  t.doesNotThrow(() => checkThinkingBlock({ thinking: 'x' }, 'p'), 'no signature');
});
