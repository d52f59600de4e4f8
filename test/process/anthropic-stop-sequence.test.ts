// A stop sequence that the greedy output is known to contain ends an Anthropic message with
// `stop_reason: "stop_sequence"` and the exact string, in the JSON body and in the stream's
// `message_delta`; the text ends just before the string's first occurrence.
import t from 'tap';
import Anthropic from '@anthropic-ai/sdk';
import { greedyReference } from '../helpers/greedy.js';
import { tinyModelPath } from '../helpers/model.js';
import { startServer } from '../helpers/server.js';

const modelPath = await tinyModelPath();
const server = await startServer(['serve', '--port', '0', '--model', modelPath, '--model-id', 'tiny', '--threads', '1', '--context-size', '2048']);
t.teardown(() => server.stop());
const client = new Anthropic({ baseURL: server.url, apiKey: 'not-checked-here', maxRetries: 0 });

const MAX = 12;
const system = 'You plan trips.';
const messages = [{ role: 'user' as const, content: 'Plan a trip to Chile.' }];

t.test('a stop sequence from the unconstrained greedy text ends the message and is named', async (t) => {
  const reference = await greedyReference(modelPath, [{ role: 'system', content: system }, ...messages], MAX);
  const chars = Array.from(reference.text);
  t.ok(chars.length >= 4, `the reference has text to cut (${JSON.stringify(reference.text)})`);
  const middle = Math.floor(chars.length / 2);
  const stop = chars.slice(middle, middle + 2).join('');
  const expected = reference.text.slice(0, reference.text.indexOf(stop));
  const body = { model: 'tiny', system, max_tokens: MAX, temperature: 0, messages, stop_sequences: ['never-in-this-text-\u0001', stop] };

  const message = await client.messages.create({ ...body, metadata: { user_id: 'stop-json' } });
  t.strictSame(message.content, [{ type: 'text', text: expected }]);
  t.equal(message.stop_reason, 'stop_sequence');
  t.equal(message.stop_sequence, stop);
  t.ok(message.usage.output_tokens <= reference.tokens.length, 'generation ended at the stop, not later');

  const stream = await client.messages.create({ ...body, stream: true, metadata: { user_id: 'stop-stream' } });
  let text = '';
  let delta: Anthropic.RawMessageDeltaEvent['delta'] | undefined;
  for await (const event of stream) {
    if (event.type === 'content_block_delta' && event.delta.type === 'text_delta') text += event.delta.text;
    if (event.type === 'message_delta') delta = event.delta;
  }
  t.equal(text, expected, 'the streamed text stops at the same place');
  t.match(delta, { stop_reason: 'stop_sequence', stop_sequence: stop });
});

t.test('an end token or no stop sequence in the text still reports end_turn / max_tokens with stop_sequence null', async (t) => {
  const body = { model: 'tiny', system, max_tokens: MAX, temperature: 0, messages, stop_sequences: ['never-in-this-text-\u0001'] };
  const message = await client.messages.create({ ...body, metadata: { user_id: 'stop-none' } });
  t.ok(message.stop_reason === 'max_tokens' || message.stop_reason === 'end_turn');
  t.equal(message.stop_sequence, null);
});
