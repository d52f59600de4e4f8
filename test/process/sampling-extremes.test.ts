// Found by the fuzzer (test/process/fuzz-http.test.ts): one request with a grammar (a JSON response
// format, a forced tool call) and a temperature or repeat penalty that rounds to 0 in float32 made
// llama.cpp's sampler draw a token the grammar refused; it threw inside the batch and the engine died,
// so every later request got 503. Now such values sample as their bounds do (greedy, a penalty of
// 1e-6) and the server keeps serving.
import t from 'tap';
import { tinyModelPath } from '../helpers/model.js';
import { startServer } from '../helpers/server.js';

const modelPath = await tinyModelPath();
const server = await startServer(['serve', '--port', '0', '--model', modelPath, '--model-id', 'tiny', '--threads', '1', '--context-size', '1024']);
t.teardown(() => server.stop());

const user = [{ role: 'user', content: 'say something' }];

async function post(path: string, body: Record<string, unknown>): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(server.url + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

const chatText = (body: Record<string, unknown>): unknown => (body.choices as { message: { content: unknown } }[])[0]?.message.content;

t.test('a grammar with a float32-zero temperature or repeat penalty is answered, and the engine lives', async (t) => {
  const json = { type: 'json_object' };
  const extremes = [{ temperature: 1e-40 }, { repeat_penalty: 5e-324 }, { temperature: 1e-30, repeat_penalty: 1e-30 }, { repeat_penalty: 1e308 }];
  for (const extreme of extremes) {
    const answer = await post('/v1/chat/completions', { model: 'tiny', messages: user, max_tokens: 8, response_format: json, ...extreme });
    t.equal(answer.status, 200, `json_object with ${JSON.stringify(extreme)}`);
  }
  const tools = [{ name: 'f', input_schema: { type: 'object', properties: { a: { type: 'string' } }, required: ['a'] } }];
  const forced = await post('/v1/messages', { model: 'tiny', messages: user, max_tokens: 8, tools, tool_choice: { type: 'any' }, temperature: 1e-40 });
  t.equal(forced.status, 200, 'a forced Anthropic tool call with temperature 1e-40');
  const plain = await post('/v1/chat/completions', { model: 'tiny', messages: user, max_tokens: 2 });
  t.equal(plain.status, 200, 'a plain request after them');
});

t.test('a temperature below 1e-6 samples greedily: the same tokens as temperature 0', async (t) => {
  const at = (temperature: number) => post('/v1/chat/completions', { model: 'tiny', messages: user, max_tokens: 12, temperature, seed: 1 });
  const greedy = await at(0);
  const tiny = await at(1e-40);
  t.equal(tiny.status, 200);
  t.equal(chatText(tiny.body), chatText(greedy.body));
});
