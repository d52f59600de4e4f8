/**
 * How the generated text is read for an OpenAI client: as text, or as text and the tool calls parsed
 * out of it (chat with tools, worker/tools/tool-calls.ts), after a reasoning model's think block is
 * split off (worker/tools/reasoning.ts).
 */
import type { ParsedToolCall } from '../../tools/tool-calls.js';
import type { ReasoningStream } from '../../tools/reasoning.js';

/** What the model wrote, as the client sees it: reasoning (`reasoning_content`), text, and the calls parsed out of it (chat with tools). */
export interface ModelOutput {
  reasoning?: string;
  text: string;
  calls: ParsedToolCall[];
}

/** Reads the generated text as it arrives; `finish` flushes what was withheld. */
export interface OutputReader {
  push(text: string): ModelOutput;
  finish(): ModelOutput;
}

/** All text: no tools, or tool_choice none. */
export const textOutput = (): OutputReader => ({ push: (text) => ({ text, calls: [] }), finish: () => ({ text: '', calls: [] }) });

/** `parallel_tool_calls: false`: at most one call, as OpenAI promises; later calls are dropped. */
export function firstCallOnly(reader: OutputReader): OutputReader {
  let kept = 0;
  const limit = (output: ModelOutput): ModelOutput => {
    const calls = output.calls.slice(0, 1 - kept);
    kept += calls.length;
    return { text: output.text, calls };
  };
  return { push: (text) => limit(reader.push(text)), finish: () => limit(reader.finish()) };
}

/** Reasoning first: the think block is split off, and only the answer is read by `reader` (so calls come from the answer only). */
export function afterReasoning(reasoning: ReasoningStream, reader: OutputReader): OutputReader {
  return {
    push(text) {
      const part = reasoning.push(text);
      return { ...reader.push(part.answer), reasoning: part.reasoning };
    },
    finish() {
      const part = reasoning.finish();
      const last = reader.push(part.answer);
      const rest = reader.finish();
      return { reasoning: part.reasoning, text: last.text + rest.text, calls: [...last.calls, ...rest.calls] };
    },
  };
}
