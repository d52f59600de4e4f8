// Reasoning models: which chat templates reason and where their output starts (thinking on and off),
// the reasoning template of the test model rendering history as Qwen3 does, and ReasoningStream
// splitting outputs into reasoning and answer, whole and streamed at every split point, composed with
// tool-call parsing of the answer.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ChatTemplate } from '../../worker/engine/chat-template.js';
import { ReasoningStream, reasoningStartOf, splitReasoning, templateReasons, type ReasoningDelta, type ReasoningStart } from '../../worker/tools/reasoning.js';
import { ToolCallStream } from '../../worker/tools/tool-calls.js';
import { reasoningChatTemplate } from '../../shared/gguf/reasoning-template.js';

const fixture = (name: string): string => readFileSync(join(import.meta.dirname, '..', 'fixtures', 'templates', name), 'utf8');
const tokens = { bos: '', eos: '<|im_end|>' };

/** Qwen3's own generation prompt: the model opens `<think>` itself; thinking off closes an empty block. */
const qwen3Style =
  "{%- for message in messages %}{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}{%- endfor %}" +
  "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- if enable_thinking is defined and enable_thinking is false %}{{- '<think>\\n\\n</think>\\n\\n' }}{%- endif %}{%- endif %}" +
  "{#- content.split('</think>') #}";
/** DeepSeek-R1's: the prompt always opens the block, `enable_thinking` is not read. */
const r1Style =
  "{%- for message in messages %}{{- '<｜' + message.role + '｜>' + message.content.split('</think>')[-1] }}{%- endfor %}{%- if add_generation_prompt %}{{- '<｜Assistant｜><think>\\n' }}{%- endif %}";

t.test('templates that reason are told from those that do not, and where output starts is read from the rendered prompt', async (t) => {
  t.equal(templateReasons(null), false, 'no template: ChatML, no reasoning');
  for (const name of ['qwen2.5-instruct.jinja', 'llama-3.1-instruct.jinja', 'mistral-nemo-instruct.jinja']) t.equal(templateReasons(fixture(name)), false, name);
  t.equal(new ChatTemplate(fixture('qwen2.5-instruct.jinja'), tokens).reasoning, null);
  t.equal(new ChatTemplate(null, tokens).reasoning, null);
  t.same(new ChatTemplate(reasoningChatTemplate, tokens).reasoning, { thinkingOn: 'reasoning', thinkingOff: 'answer' }, 'our test model: the prompt opens the block');
  t.same(new ChatTemplate(qwen3Style, tokens).reasoning, { thinkingOn: 'may-open', thinkingOff: 'answer' }, 'Qwen3: the model opens it');
  t.same(new ChatTemplate(r1Style, tokens).reasoning, { thinkingOn: 'reasoning', thinkingOff: 'reasoning' }, 'DeepSeek-R1: opened whatever the switch');
  t.equal(reasoningStartOf('<|im_start|>user\nwhat is <think>?<|im_end|>\n<|im_start|>assistant\n', false), 'answer', 'a message quoting <think> opens nothing');
  t.equal(reasoningStartOf('Question: 2+2?\n<think>\n', false), 'reasoning', 'a raw prompt that opened the block');
});

t.test('the reasoning template renders thinking on and off, and drops reasoning of turns before the last user message', async (t) => {
  const template = new ChatTemplate(reasoningChatTemplate, tokens);
  const user = { role: 'user' as const, content: 'Hi' };
  t.equal(template.render([user]), '<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\n');
  t.equal(template.render([user], undefined, true), '<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\n');
  t.equal(template.render([user], undefined, false), '<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n');
  const history = [user, { role: 'assistant' as const, content: 'Hello!', reasoning: 'A greeting.' }, { role: 'user' as const, content: 'Again' }];
  t.equal(
    template.render(history),
    '<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\nAgain<|im_end|>\n<|im_start|>assistant\n<think>\n',
    'an earlier turn keeps only its answer',
  );
  const loop = [
    user,
    { role: 'assistant' as const, content: '', reasoning: 'Call it.', toolCalls: [{ id: 'c1', name: 'f', arguments: '{"a":1}' }] },
    { role: 'tool' as const, content: '42', toolCallId: 'c1' },
  ];
  t.equal(
    template.render(loop),
    '<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\nCall it.\n</think>\n\n<tool_call>\n{"name": "f", "arguments": {"a": 1}}\n</tool_call><|im_end|>\n' +
      '<|im_start|>user\n<tool_response>\n42\n</tool_response><|im_end|>\n<|im_start|>assistant\n<think>\n',
    'a tool-call loop in progress keeps its reasoning',
  );
  const inline = [user, { role: 'assistant' as const, content: '<think>\nWhy.\n</think>\n\nBecause.' }, { role: 'user' as const, content: 'Again' }];
  t.match(template.render(inline), '<|im_start|>assistant\nBecause.<|im_end|>', 'reasoning written inline in the content is split off as Qwen3 does');
});

interface Case {
  name: string;
  start: ReasoningStart;
  output: string;
  reasoning: string;
  answer: string;
}

const cases: Case[] = [
  {
    name: 'opened by the prompt, closed, answered',
    start: 'reasoning',
    output: 'Let me see.\nTwo.\n</think>\n\nThe answer is 4.',
    reasoning: 'Let me see.\nTwo.',
    answer: 'The answer is 4.',
  },
  { name: 'opened by the prompt, never closed (max tokens)', start: 'reasoning', output: '\nStill thinking about it <', reasoning: 'Still thinking about it <', answer: '' },
  { name: 'opened by the prompt, closed at once (thinking off, forced)', start: 'reasoning', output: '\n</think>\n\nHi.', reasoning: '', answer: 'Hi.' },
  { name: 'the model opens it (Qwen3)', start: 'may-open', output: '\n<think>\nHmm.\n</think>\n\nYes.', reasoning: 'Hmm.', answer: 'Yes.' },
  { name: 'the model answers at once (Qwen3, no block)', start: 'may-open', output: 'Yes. <think> is a tag.', reasoning: '', answer: 'Yes. <think> is a tag.' },
  { name: 'the model writes only the start of a tag', start: 'may-open', output: '  <thi', reasoning: '', answer: '  <thi' },
  { name: 'a model that does not reason: text as it is', start: 'answer', output: '\n<think>x</think>\n y ', reasoning: '', answer: '\n<think>x</think>\n y ' },
  { name: 'a second block is answer text', start: 'reasoning', output: 'a</think>b<think>c</think>d', reasoning: 'a', answer: 'b<think>c</think>d' },
  { name: 'whitespace inside reasoning is kept', start: 'reasoning', output: 'a \n b</think>c', reasoning: 'a \n b', answer: 'c' },
];

function joined(parts: ReasoningDelta[]): ReasoningDelta {
  return { reasoning: parts.map((p) => p.reasoning).join(''), answer: parts.map((p) => p.answer).join('') };
}

t.test('ReasoningStream splits whole outputs and streams split at every point alike', async (t) => {
  for (const c of cases) {
    t.same(splitReasoning(c.start, c.output), { reasoning: c.reasoning, answer: c.answer }, `${c.name}: whole`);
    for (let at = 0; at <= c.output.length; at++) {
      const stream = new ReasoningStream(c.start);
      const parts = [stream.push(c.output.slice(0, at)), stream.push(c.output.slice(at)), stream.finish()];
      t.same(joined(parts), { reasoning: c.reasoning, answer: c.answer }, `${c.name}: split at ${at}`);
    }
    const stream = new ReasoningStream(c.start);
    const perChar = [...c.output].map((char) => stream.push(char));
    t.same(joined([...perChar, stream.finish()]), { reasoning: c.reasoning, answer: c.answer }, `${c.name}: one character at a time`);
  }
});

t.test('a partial </think> is withheld, not shown as reasoning, until it is ruled out', async (t) => {
  const stream = new ReasoningStream('reasoning');
  t.same(stream.push('Think </th'), { reasoning: 'Think', answer: '' });
  t.equal(stream.inReasoning, true);
  t.same(stream.push('ink>'), { reasoning: '', answer: '' });
  t.equal(stream.answering, true);
  t.same(stream.push('\n\nOK'), { reasoning: '', answer: 'OK' });
  const ruledOut = new ReasoningStream('reasoning');
  t.same(ruledOut.push('a </t'), { reasoning: 'a', answer: '' });
  t.same(ruledOut.push('able>'), { reasoning: ' </table>', answer: '' });
});

t.test('tool calls are parsed from the answer only', async (t) => {
  const output = 'I should call <tool_call> here.\n</think>\n\n<tool_call>\n{"name": "f", "arguments": {"a": 1}}\n</tool_call>';
  const reasoning = new ReasoningStream('reasoning');
  const calls = new ToolCallStream('hermes');
  let thought = '';
  let text = '';
  const found: string[] = [];
  for (const piece of output.match(/[\s\S]{1,5}/g) ?? []) {
    const part = reasoning.push(piece);
    thought += part.reasoning;
    const delta = calls.push(part.answer);
    text += delta.text;
    found.push(...delta.calls.map((c) => `${c.name} ${c.arguments}`));
  }
  const last = calls.push(reasoning.finish().answer);
  const end = calls.finish();
  found.push(...[...last.calls, ...end.calls].map((c) => `${c.name} ${c.arguments}`));
  t.equal(thought, 'I should call <tool_call> here.', 'a call syntax inside reasoning is reasoning');
  t.equal(text + last.text + end.text, '');
  t.same(found, ['f {"a":1}']);
});
