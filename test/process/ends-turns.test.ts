// The `make-model --ends-turns` variant behind a real server: sampled answers (temperature 1, what
// Claude Code sends) end by themselves with `<|im_end|>`, which the engine takes as end of
// generation: finish_reason `stop` on chat completions, stop_reason `end_turn` on Anthropic Messages,
// never an empty answer, and never near max_tokens. Default settings: its trained context (32768)
// holds an agent's long prompt without --context-size.
import t from 'tap';
import { tinyEndsTurnsModelPath } from '../helpers/model.js';
import { startServer } from '../helpers/server.js';
import { readGgufMetadata } from '../../shared/gguf/reader.js';

const path = await tinyEndsTurnsModelPath();
const server = await startServer(['serve', '--port', '0', '--model', path, '--model-id', 'tiny', '--threads', '1']);
t.teardown(() => server.stop());

const MAX = 64;
const post = async (route: string, body: object) => {
  const response = await fetch(`${server.url}${route}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
};
interface Completion {
  choices: { finish_reason: string; message: { content: string } }[];
  usage: { completion_tokens: number };
}

t.test('the variant is trained for 32768 tokens of context', async (t) => {
  t.equal((await readGgufMetadata(path)).get('qwen2.context_length')?.value, 32768);
});

t.test('sampled chat completions all end with stop after a few tokens', async (t) => {
  const lengths: number[] = [];
  for (let seed = 0; seed < 8; seed++) {
    const { status, body } = await post('/v1/chat/completions', {
      model: 'tiny',
      messages: [{ role: 'user', content: `Say hello (${seed})` }],
      max_tokens: MAX,
      temperature: 1,
      seed,
    });
    t.equal(status, 200);
    const completion = body as unknown as Completion;
    t.equal(completion.choices[0]?.finish_reason, 'stop', `seed ${seed} ends by itself`);
    t.not(completion.choices[0]?.message.content, '', `seed ${seed} answers something`);
    lengths.push(completion.usage.completion_tokens);
  }
  t.ok(Math.min(...lengths) >= 1, `no empty answer: ${lengths.join(' ')}`);
  t.ok(Math.max(...lengths) <= MAX / 2, `every answer ends well before max_tokens: ${lengths.join(' ')}`);
});

t.test('greedy answers end by themselves too', async (t) => {
  const { body } = await post('/v1/chat/completions', { model: 'tiny', messages: [{ role: 'user', content: 'Say hello' }], max_tokens: MAX, temperature: 0 });
  t.equal((body as unknown as Completion).choices[0]?.finish_reason, 'stop');
});

t.test('Anthropic Messages at the default temperature: stop_reason end_turn with text', async (t) => {
  // Messages have no seed, so these samples differ from run to run: a budget of 1,024 tokens makes
  // running out (max_tokens) vanishingly unlikely; with 64, one sample in a CI run reached it.
  for (let i = 0; i < 3; i++) {
    const { status, body } = await post('/v1/messages', { model: 'tiny', max_tokens: 1024, messages: [{ role: 'user', content: `Say hello, take ${i}` }] });
    t.equal(status, 200);
    t.equal(body.stop_reason, 'end_turn');
    const [block] = body.content as { type: string; text: string }[];
    t.equal(block?.type, 'text');
    t.not(block?.text, '');
  }
});
