/**
 * Tool calls in a model's output, in the syntax its family was trained on (format.ts picks which):
 *  - hermes (Qwen 2/2.5/3, Hermes 2/3, our ChatML fallback): `<tool_call>\n{"name": …, "arguments": {…}}\n</tool_call>`, any number, text before is content;
 *  - llama3 (Llama 3.1/3.2/3.3): the output itself starts with `{"name": …, "parameters": {…}}` (or `"arguments"`),
 *    possibly after `<|python_tag|>`, several separated by `;` or newlines;
 *  - mistral (v0.3, Nemo, Small): `[TOOL_CALLS][{"name": …, "arguments": {…}}, …]`, or the newer `[TOOL_CALLS]name[ARGS]{…}`.
 *
 * Why our own parsers and not llama.cpp's common/chat.cpp: that code (PEG parser, its own Jinja, JSON
 * schema) would have to be compiled into the addon, adding minutes of C++ build to every install, while
 * the templates already run in @huggingface/jinja. These parsers are small and tested on recorded outputs.
 *
 * The engine renders control tokens such as `<|python_tag|>` and Mistral's `[TOOL_CALLS]` when a request
 * has tools (Sequence.rendersSpecialTokens); the forms without them are recognised at the output's
 * start too, for models whose vocabulary writes them as plain text.
 *
 * One state machine serves streaming and whole outputs (the whole output is one delta), so both agree
 * by construction. Whitespace next to a call is not content (models put newlines between calls), and
 * malformed call syntax stays text: nothing the model wrote is lost.
 */
import type { ToolFormat } from './format.js';

/** A call parsed from the model's text; ids are given by the API layer (call_…, toolu_…). */
export interface ParsedToolCall {
  name: string;
  arguments: string /* JSON text, compact */;
}

export interface ToolCallDelta {
  text: string;
  calls: ParsedToolCall[];
}

/** Text and calls in the order the model wrote them (Anthropic blocks keep that order; OpenAI needs only the totals). */
export type ToolCallPart = { text: string } | { call: ParsedToolCall };

/** Where a call's syntax opens in text, or from where the text could still become an opening (withheld). */
type Opening = { found: true; index: number; length: number } | { found: false; withholdFrom: number };

/** What a call's body (the text after its opening) is so far. */
type BodyParse = { status: 'complete'; calls: ParsedToolCall[]; consumed: number } | { status: 'incomplete' } | { status: 'invalid' };

interface CallSyntax {
  /** `atStart`: nothing but whitespace came before `text` in the output. */
  findOpening(text: string, atStart: boolean): Opening;
  /** `final`: the output ends with `body`. */
  parseBody(body: string, final: boolean): BodyParse;
}

// ---------- JSON helpers ----------

/** Index just past the JSON object or array that opens at `start`, or undefined while it is still open. */
export function balancedJsonEnd(text: string, start: number): number | undefined {
  let depth = 0;
  let inString = false;
  for (let i = start; i < text.length; i++) {
    const char = text[i];
    if (inString) {
      if (char === '\\') i++;
      else if (char === '"') inString = false;
    } else if (char === '"') inString = true;
    else if (char === '{' || char === '[') depth++;
    else if (char === '}' || char === ']') {
      depth--;
      if (depth === 0) return i + 1;
    }
  }
  return undefined;
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Arguments as compact JSON text; some models write them as a JSON string, which must hold an object. */
function argumentsText(value: unknown): string | undefined {
  const args = typeof value === 'string' ? parseJson(value) : (value ?? {});
  return isPlainObject(args) ? JSON.stringify(args) : undefined;
}

/**
 * `{"name": …, "arguments"|"parameters": {…}}` as a call, or undefined when it is not one. The
 * arguments key is required (as llama.cpp's parsers require it): Llama 3 and Mistral calls have no
 * marker of their own, and a JSON answer that merely has a `name` field is not a call.
 */
export function callFromJson(value: unknown): ParsedToolCall | undefined {
  if (!isPlainObject(value) || typeof value.name !== 'string' || value.name === '') return undefined;
  if (!('arguments' in value) && !('parameters' in value)) return undefined;
  const args = argumentsText(value.arguments ?? value.parameters);
  return args === undefined ? undefined : { name: value.name, arguments: args };
}

// ---------- text helpers ----------

/** From where `text` ends with a proper prefix of `marker` (text.length when it does not). */
function partialMarkerStart(text: string, marker: string): number {
  for (let start = Math.max(0, text.length - marker.length + 1); start < text.length; start++) {
    if (marker.startsWith(text.slice(start))) return start;
  }
  return text.length;
}

function findMarker(text: string, marker: string): Opening {
  const index = text.indexOf(marker);
  return index >= 0 ? { found: true, index, length: marker.length } : { found: false, withholdFrom: partialMarkerStart(text, marker) };
}

const firstNonSpace = (text: string, from = 0): number => {
  const match = /\S/.exec(text.slice(from));
  return match === null ? -1 : from + match.index;
};

// ---------- formats ----------

const hermesOpen = '<tool_call>';
const hermesClose = '</tool_call>';

const hermes: CallSyntax = {
  findOpening: (text) => findMarker(text, hermesOpen),
  parseBody(body, final) {
    const close = body.indexOf(hermesClose);
    if (close < 0 && !final) return { status: 'incomplete' };
    const call = callFromJson(parseJson(body.slice(0, close < 0 ? body.length : close).trim()));
    if (call === undefined) return { status: 'invalid' };
    return { status: 'complete', calls: [call], consumed: close < 0 ? body.length : close + hermesClose.length };
  },
};

const pythonTag = '<|python_tag|>';

/** Llama 3: calls only where the output starts with one; `{` itself opens (the body begins with it). */
const llama3: CallSyntax = {
  findOpening(text, atStart) {
    const start = firstNonSpace(text);
    if (!atStart || start < 0) return { found: false, withholdFrom: atStart ? 0 : text.length };
    if (text[start] === '{') return { found: true, index: start, length: 0 };
    const rest = text.slice(start);
    if (rest.startsWith(pythonTag)) return { found: true, index: start, length: pythonTag.length };
    return { found: false, withholdFrom: pythonTag.startsWith(rest) ? start : text.length };
  },
  parseBody(body, final) {
    const calls: ParsedToolCall[] = [];
    let position = 0;
    while (true) {
      const start = firstNonSeparator(body, position);
      if (start < 0) return final ? settleLlama3(calls, body.length) : { status: 'incomplete' };
      if (body[start] !== '{') return settleLlama3(calls, start);
      const end = balancedJsonEnd(body, start);
      if (end === undefined) return final ? settleLlama3(calls, start) : { status: 'incomplete' };
      const call = callFromJson(parseJson(body.slice(start, end)));
      if (call === undefined) return settleLlama3(calls, start);
      calls.push(call);
      position = end;
    }
  },
};

/** Separators between Llama 3 calls: whitespace and `;`. */
function firstNonSeparator(text: string, from: number): number {
  const match = /[^\s;]/.exec(text.slice(from));
  return match === null ? -1 : from + match.index;
}

/** Llama 3 calls end where something other than another call begins; none at all means no call syntax. */
function settleLlama3(calls: ParsedToolCall[], consumed: number): BodyParse {
  return calls.length === 0 ? { status: 'invalid' } : { status: 'complete', calls, consumed };
}

const mistralMarker = '[TOOL_CALLS]';
const mistralArgs = '[ARGS]';

/** Mistral: `[TOOL_CALLS]` anywhere, or (its control token unrendered) an output that starts with `[`. */
const mistral: CallSyntax = {
  findOpening(text, atStart) {
    const start = firstNonSpace(text);
    if (atStart && start >= 0 && text[start] === '[') return { found: true, index: start, length: 0 };
    if (atStart && start < 0) return { found: false, withholdFrom: 0 };
    return findMarker(text, mistralMarker);
  },
  parseBody(body, final) {
    let start = firstNonSpace(body);
    if (start < 0) return final ? { status: 'invalid' } : { status: 'incomplete' };
    const rest = body.slice(start);
    if (rest.length < mistralMarker.length && mistralMarker.startsWith(rest)) return final ? { status: 'invalid' } : { status: 'incomplete' };
    if (rest.startsWith(mistralMarker)) start = firstNonSpace(body, start + mistralMarker.length);
    if (start < 0) return final ? { status: 'invalid' } : { status: 'incomplete' };
    return body[start] === '[' ? mistralArray(body, start, final) : mistralNamed(body, start, final);
  },
};

/** `[{"name": …, "arguments": {…}}, …]`: every element must be a call. */
function mistralArray(body: string, start: number, final: boolean): BodyParse {
  const afterBracket = firstNonSpace(body, start + 1);
  if (afterBracket >= 0 && body[afterBracket] !== '{') return { status: 'invalid' };
  const end = balancedJsonEnd(body, start);
  if (end === undefined) return final ? { status: 'invalid' } : { status: 'incomplete' };
  const value = parseJson(body.slice(start, end));
  const calls = Array.isArray(value) ? value.map(callFromJson) : [];
  if (calls.length === 0 || calls.some((call) => call === undefined)) return { status: 'invalid' };
  return { status: 'complete', calls: calls as ParsedToolCall[], consumed: end };
}

/** The newer `name[ARGS]{…}` form. */
function mistralNamed(body: string, start: number, final: boolean): BodyParse {
  const argsAt = body.indexOf(mistralArgs, start);
  if (argsAt < 0) {
    const nameSoFar = body.slice(start);
    const couldBeName = /^[A-Za-z0-9_.-]*\[?[ARGS]*$/.test(nameSoFar) && nameSoFar.length <= 64 + mistralArgs.length;
    return couldBeName && !final ? { status: 'incomplete' } : { status: 'invalid' };
  }
  const name = body.slice(start, argsAt);
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(name)) return { status: 'invalid' };
  const argsStart = firstNonSpace(body, argsAt + mistralArgs.length);
  if (argsStart < 0) return final ? { status: 'invalid' } : { status: 'incomplete' };
  if (body[argsStart] !== '{') return { status: 'invalid' };
  const end = balancedJsonEnd(body, argsStart);
  if (end === undefined) return final ? { status: 'invalid' } : { status: 'incomplete' };
  const call = callFromJson({ name, arguments: parseJson(body.slice(argsStart, end)) });
  return call === undefined ? { status: 'invalid' } : { status: 'complete', calls: [call], consumed: end };
}

const syntaxes: Record<ToolFormat, CallSyntax> = { hermes, llama3, mistral };

// ---------- the stream ----------

/**
 * Streaming: feed text deltas; `text` is safe to show now (anything that could be the start of a call
 * is withheld, and whitespace that may turn out to precede a call), `calls` are the calls completed by
 * this delta. `finish()` flushes at the end of generation.
 */
export class ToolCallStream {
  private readonly syntax: CallSyntax;
  /** Text received and not yet settled. */
  private buffer = '';
  /** Inside a call's syntax: its opening's text and the whitespace dropped before it (both restored if it turns out malformed). */
  private call: { opening: string; droppedSpace: string } | undefined;
  /** Trailing whitespace of shown text, held back in case a call follows. */
  private heldSpace = '';
  /** Nothing but whitespace so far: where Llama 3 and bare Mistral calls may open. */
  private atStart = true;
  /** The last thing settled was a call: whitespace after it is not content. */
  private afterCall = false;
  private done = false;

  constructor(format: ToolFormat) {
    this.syntax = syntaxes[format];
  }

  push(delta: string): ToolCallDelta {
    return totals(this.pushParts(delta));
  }

  finish(): ToolCallDelta {
    return totals(this.finishParts());
  }

  /** As `push`, with text and calls in the order they were written. */
  pushParts(delta: string): ToolCallPart[] {
    if (this.done) throw new Error('ToolCallStream: push after finish');
    this.buffer += delta;
    return this.settle(false);
  }

  /** As `finish`, with text and calls in the order they were written. */
  finishParts(): ToolCallPart[] {
    if (this.done) return [];
    const out = this.settle(true);
    this.done = true;
    if (!this.afterCall) addText(out, this.heldSpace);
    this.heldSpace = '';
    return out;
  }

  private settle(final: boolean): ToolCallPart[] {
    const out: ToolCallPart[] = [];
    while (this.call === undefined ? this.settleText(out, final) : this.settleCall(out, final));
    return out;
  }

  /** Text mode: show what cannot start a call; enter a call at an opening. Returns whether to go on. */
  private settleText(out: ToolCallPart[], final: boolean): boolean {
    const opening = this.syntax.findOpening(this.buffer, this.atStart);
    if (!opening.found) {
      const end = final ? this.buffer.length : opening.withholdFrom;
      this.show(out, this.buffer.slice(0, end));
      this.buffer = this.buffer.slice(end);
      return false;
    }
    this.show(out, this.buffer.slice(0, opening.index));
    this.call = { opening: this.buffer.slice(opening.index, opening.index + opening.length), droppedSpace: this.afterCall ? '' : this.heldSpace };
    this.heldSpace = '';
    this.atStart = false;
    this.buffer = this.buffer.slice(opening.index + opening.length);
    return true;
  }

  /** Call mode: wait for the body to complete; a malformed one goes back to being text. */
  private settleCall(out: ToolCallPart[], final: boolean): boolean {
    const call = this.call as { opening: string; droppedSpace: string };
    const parsed = this.syntax.parseBody(this.buffer, final);
    if (parsed.status === 'incomplete') return false;
    this.call = undefined;
    if (parsed.status === 'invalid') {
      // The opening is shown as text and the body searched again; the opening is not (atStart is now
      // false, so a zero-length opening cannot match at the same place forever).
      this.heldSpace = call.droppedSpace;
      this.show(out, call.opening);
      return true;
    }
    out.push(...parsed.calls.map((call) => ({ call })));
    this.buffer = this.buffer.slice(parsed.consumed);
    this.afterCall = true;
    return true;
  }

  /** Adds settled text to `out`, holding back trailing whitespace and dropping whitespace right after a call. */
  private show(out: ToolCallPart[], segment: string): void {
    if (this.afterCall) {
      segment = segment.trimStart();
      if (segment === '') return;
      this.afterCall = false;
    }
    const text = this.heldSpace + segment;
    const body = text.trimEnd();
    this.heldSpace = text.slice(body.length);
    addText(out, body);
    if (body.trim() !== '') this.atStart = false;
  }
}

/** Appends text to the last text part, or starts one (after a call, or at first). */
function addText(out: ToolCallPart[], text: string): void {
  if (text === '') return;
  const last = out.at(-1);
  if (last !== undefined && 'text' in last) last.text += text;
  else out.push({ text });
}

/** The text and the calls of some parts, each joined in order. */
function totals(parts: readonly ToolCallPart[]): ToolCallDelta {
  const out: ToolCallDelta = { text: '', calls: [] };
  for (const part of parts) {
    if ('call' in part) out.calls.push(part.call);
    else out.text += part.text;
  }
  return out;
}

/** Whole-output parse: the text outside tool-call syntax, and the calls in order. Malformed call syntax stays text. */
export function parseToolCalls(format: ToolFormat, output: string): ToolCallDelta {
  const stream = new ToolCallStream(format);
  const first = stream.push(output);
  const last = stream.finish();
  return { text: first.text + last.text, calls: [...first.calls, ...last.calls] };
}
