// Real chat templates (Qwen 2.5, Llama 3.1, Mistral Nemo) rendering tools, an assistant's tool call and
// its result; a call the model family really wrote survives the round trip: parsed from the recorded
// output, rendered back into the prompt by the template, parsed again to the same call. Plus our
// ChatML fallback and the tools text spliced into templates that know no tools.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ChatTemplate } from '../../worker/engine/chat-template.js';
import { detectToolFormat, type ToolFormat } from '../../worker/tools/format.js';
import { parseToolCalls } from '../../worker/tools/tool-calls.js';
import { BadRequestError } from '../../shared/errors.js';
import type { ChatMessage, ToolDefinition } from '../../shared/protocol/messages.js';

const fixture = (name: string): string => readFileSync(join(import.meta.dirname, '..', 'fixtures', 'templates', name), 'utf8');

const tools: ToolDefinition[] = [
  {
    name: 'get_current_weather',
    description: 'Get the current weather in a given location',
    parameters: { type: 'object', properties: { location: { type: 'string' } }, required: ['location'] },
  },
];

interface Family {
  file: string;
  format: ToolFormat;
  tokens: { bos: string; eos: string };
  /** What a model of the family wrote when asked for the weather in Paris (control tokens unrendered). */
  recorded: string;
  /** The assistant's call as the template renders it into the prompt, and the turn after it. */
  renderedCall: RegExp;
  renderedResult: string;
}

const families: Family[] = [
  {
    file: 'qwen2.5-instruct.jinja',
    format: 'hermes',
    tokens: { bos: '', eos: '<|im_end|>' },
    recorded: '<tool_call>\n{"name": "get_current_weather", "arguments": {"location": "Paris"}}\n</tool_call>',
    renderedCall: /<\|im_start\|>assistant\n(<tool_call>\n\{"name": "get_current_weather", "arguments": \{"location": "Paris"\}\}\n<\/tool_call>)<\|im_end\|>\n/,
    renderedResult: '<|im_start|>user\n<tool_response>\n{"temperature": 22}\n</tool_response><|im_end|>\n<|im_start|>assistant\n',
  },
  {
    file: 'llama-3.1-instruct.jinja',
    format: 'llama3',
    tokens: { bos: '<|begin_of_text|>', eos: '<|eot_id|>' },
    recorded: '{"name": "get_current_weather", "parameters": {"location": "Paris"}}',
    renderedCall: /<\|start_header_id\|>assistant<\|end_header_id\|>\n\n(\{"name": "get_current_weather", "parameters": \{"location": "Paris"\}\})<\|eot_id\|>/,
    // The template's `is iterable` holds for strings too (in Python's Jinja as well): results arrive as a JSON string.
    renderedResult: '<|start_header_id|>ipython<|end_header_id|>\n\n"{\\"temperature\\": 22}"<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n',
  },
  {
    file: 'mistral-nemo-instruct.jinja',
    format: 'mistral',
    tokens: { bos: '<s>', eos: '</s>' },
    recorded: '[{"name": "get_current_weather", "arguments": {"location": "Paris"}, "id": "Xy12Ab34c"}]',
    renderedCall: /(\[TOOL_CALLS\]\[\{"name": "get_current_weather", "arguments": \{"location": "Paris"\}, "id": "[A-Za-z0-9]{9}"\}\])<\/s>/,
    renderedResult: '[TOOL_RESULTS]{"content": {"temperature": 22}, "call_id": "',
  },
];

const question: ChatMessage = { role: 'user', content: 'What is the weather in Paris?' };

/** The conversation after the model's call: the call (its id as the API gave it) and the tool's result. */
function conversation(calls: { name: string; arguments: string }[]): ChatMessage[] {
  const toolCalls = calls.map((call, index) => ({ id: `call_${index}abcdefghijklmnop`, ...call }));
  return [
    { role: 'system', content: 'You are a weather bot.' },
    question,
    { role: 'assistant', content: '', toolCalls },
    { role: 'tool', content: '{"temperature": 22}', toolCallId: 'call_0abcdefghijklmnop', name: 'get_current_weather' },
  ];
}

for (const family of families) {
  t.test(`${family.file}: tools, a call and its result round-trip`, async (t) => {
    const source = fixture(family.file);
    t.equal(detectToolFormat(source), family.format, 'the format is detected from the template');
    const template = new ChatTemplate(source, family.tokens);

    const opening = template.render([question], tools);
    t.match(opening, '"name": "get_current_weather"', 'the tool reaches the prompt');
    t.match(opening, '"description": "Get the current weather in a given location"');
    t.notMatch(template.render([question]), 'get_current_weather', 'no tools, no tool text');

    const parsed = parseToolCalls(family.format, family.recorded);
    t.same(parsed, { text: '', calls: [{ name: 'get_current_weather', arguments: '{"location":"Paris"}' }] }, 'the recorded output is one call');
    const prompt = template.render(conversation(parsed.calls), tools);
    const rendered = family.renderedCall.exec(prompt);
    t.ok(rendered, 'the call is rendered in the family syntax');
    t.same(parseToolCalls(family.format, rendered?.[1] ?? ''), parsed, 'and parses back to the same call');
    t.match(prompt, family.renderedResult, 'the result follows, as the template words it');
  });
}

t.test('mistral: call ids of any shape map to the same 9 characters in the call and its result', async (t) => {
  const prompt = new ChatTemplate(fixture('mistral-nemo-instruct.jinja'), { bos: '<s>', eos: '</s>' }).render(
    conversation([{ name: 'get_current_weather', arguments: '{"location":"Paris"}' }]),
    tools,
  );
  const callId = /"id": "([A-Za-z0-9]{9})"/.exec(prompt)?.[1];
  const resultId = /"call_id": "([A-Za-z0-9]{9})"/.exec(prompt)?.[1];
  t.ok(callId);
  t.equal(resultId, callId);
});

t.test('a template that refuses the conversation is a 400 naming messages', async (t) => {
  const template = new ChatTemplate(fixture('llama-3.1-instruct.jinja'), { bos: '<|begin_of_text|>', eos: '<|eot_id|>' });
  const twoCalls = conversation([
    { name: 'get_current_weather', arguments: '{"location":"Paris"}' },
    { name: 'get_current_weather', arguments: '{"location":"Rome"}' },
  ]);
  t.throws(
    () => template.render(twoCalls, tools),
    new BadRequestError("the model's chat template rejected these messages: This model only supports single tool-calls at once!", 'messages'),
  );
});

t.test('fallback ChatML: plain without tools, Hermes tools with them', async (t) => {
  const template = new ChatTemplate(null, { bos: '', eos: '' });
  t.equal(
    template.render([{ role: 'developer', content: 'Be brief.' }, question]),
    '<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nWhat is the weather in Paris?<|im_end|>\n<|im_start|>assistant\n',
  );
  const opening = template.render([{ role: 'system', content: 'Be brief.' }, question], tools);
  t.match(opening, /^<\|im_start\|>system\nBe brief\.\n\n# Tools\n\nYou may call one or more functions/);
  t.match(
    opening,
    '<tools>\n{"type": "function", "function": {"name": "get_current_weather", "description": "Get the current weather in a given location", "parameters": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}}}\n</tools>',
  );
  const calls = [{ name: 'get_current_weather', arguments: '{"location":"Paris"}' }];
  t.match(
    template.render(conversation(calls), tools),
    '<|im_start|>assistant\n<tool_call>\n{"name": "get_current_weather", "arguments": {"location": "Paris"}}\n</tool_call><|im_end|>\n' +
      '<|im_start|>user\n<tool_response>\n{"temperature": 22}\n</tool_response><|im_end|>\n<|im_start|>assistant\n',
  );
});

t.test('a template that knows no tools is told of them in its system turn, calls and results as Hermes text', async (t) => {
  // The tiny test model's template (Qwen 2's, from llama.cpp's vocabulary GGUF).
  const qwen2 =
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful assistant<|im_end|>\n' }}{% endif %}" +
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";
  const template = new ChatTemplate(qwen2, { bos: '', eos: '' });
  t.equal(
    template.render([question]),
    '<|im_start|>system\nYou are a helpful assistant<|im_end|>\n<|im_start|>user\nWhat is the weather in Paris?<|im_end|>\n<|im_start|>assistant\n',
  );
  t.match(template.render([question], tools), /^<\|im_start\|>system\n# Tools\n\nYou may call one or more functions[^]*<\/tool_call><\|im_end\|>\n<\|im_start\|>user\n/);
  const prompt = template.render(conversation([{ name: 'get_current_weather', arguments: '{"location":"Paris"}' }]), tools);
  t.match(prompt, /^<\|im_start\|>system\nYou are a weather bot\.\n\n# Tools\n/);
  t.match(
    prompt,
    '<|im_start|>assistant\n<tool_call>\n{"name": "get_current_weather", "arguments": {"location": "Paris"}}\n</tool_call><|im_end|>\n' +
      '<|im_start|>user\n<tool_response>\n{"temperature": 22}\n</tool_response><|im_end|>\n<|im_start|>assistant\n',
  );
});

t.test('arguments nesting past the JSON depth limit are printed as the text they are, not parsed', async (t) => {
  const deep = '['.repeat(100_000) + ']'.repeat(100_000);
  const messages: ChatMessage[] = [
    { role: 'user', content: 'go' },
    { role: 'assistant', content: '', toolCalls: [{ id: 'c1', name: 'get_weather', arguments: deep }] },
    { role: 'tool', content: 'done', toolCallId: 'c1' },
  ];
  for (const source of [null, fixture('qwen2.5-instruct.jinja')]) {
    const prompt = new ChatTemplate(source, { bos: '', eos: '' }).render(messages, tools);
    t.ok(prompt.includes('[[[['), `rendered by ${source === null ? 'the fallback' : 'Qwen 2.5'} without overflowing`);
  }
});
