/**
 * Captures one real Claude Code request for fixtures (SEMANTIC_CLAUDE_CODE_CAPTURE in
 * claude-code-e2e.ts): a loopback proxy in front of Semantic that forwards everything unchanged and
 * keeps the first main `POST /v1/messages` (the one that carries tools), with every natural-language
 * string replaced by filler of the same length. The structure stays: roles, block types, tool names
 * and schema shapes, cache_control placement, the header list. Same-length filler keeps the prompt
 * about as long in tokens as the real one, which is what a prefix-sharing benchmark needs.
 */
import { createServer, request, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface CapturedRequest {
  method: string;
  path: string;
  headers: Record<string, string>;
  body: unknown;
}

export interface CaptureProxy {
  url: string;
  /** The first main request seen, its text replaced; undefined until one came. */
  captured(): CapturedRequest | undefined;
  close(): Promise<void>;
}

/** Common English words by length (index = length), so the filler tokenizes about as prose does. */
const wordsByLength: readonly (readonly string[])[] = [
  [],
  ['a', 'i', 'o'],
  ['an', 'to', 'of', 'in', 'it', 'on', 'as', 'by', 'or', 'is', 'be', 'we', 'at', 'if', 'so', 'up', 'no', 'do'],
  ['the', 'and', 'for', 'you', 'not', 'are', 'but', 'can', 'use', 'all', 'any', 'new', 'one', 'way', 'get', 'run', 'set', 'may'],
  ['that', 'with', 'this', 'from', 'have', 'when', 'will', 'each', 'file', 'only', 'more', 'what', 'work', 'user', 'line', 'text', 'make', 'like'],
  ['which', 'their', 'there', 'these', 'other', 'about', 'first', 'would', 'files', 'shell', 'using', 'after', 'where', 'never', 'order', 'start'],
  ['should', 'before', 'always', 'output', 'change', 'number', 'result', 'little', 'system', 'people', 'called', 'within', 'common', 'simple'],
  ['between', 'current', 'through', 'command', 'without', 'another', 'example', 'changes', 'request', 'against', 'general', 'running'],
  ['together', 'possible', 'question', 'multiple', 'children', 'complete', 'language', 'response', 'directly', 'provided', 'whenever'],
  ['different', 'important', 'following', 'something', 'available', 'therefore', 'directory', 'including', 'otherwise', 'parameter'],
  ['everything', 'especially', 'understand', 'themselves', 'repository', 'additional', 'background', 'particular', 'definition'],
  ['information', 'description', 'environment', 'application', 'immediately', 'possibility', 'requirement', 'understands'],
  ['instructions', 'particularly', 'implementing', 'successfully', 'conversation', 'dependencies', 'individually'],
];

function fillerWord(length: number, index: number): string {
  if (length < wordsByLength.length) {
    const words = wordsByLength[length]!;
    return words[index % words.length]!;
  }
  const longest = wordsByLength.length - 1;
  return fillerWord(longest, index) + fillerWord(length - longest, index + 1);
}

/** Each word becomes a common word of its own length and case; each digit becomes 0–9 in turn; spacing and punctuation stay. */
export function fillText(text: string): string {
  let [words, digits] = [0, 0];
  return text.replace(/[A-Za-z]+|[0-9]/g, (match) => {
    if (/[0-9]/.test(match)) return String(digits++ % 10);
    const filled = fillerWord(match.length, words++);
    if (match.length > 1 && match === match.toUpperCase()) return filled.toUpperCase();
    return match[0] === match[0]!.toUpperCase() ? filled[0]!.toUpperCase() + filled.slice(1) : filled;
  });
}

/** Keys whose string values are prose (or a user's words, or a tool's output) rather than structure. */
const proseKeys = new Set(['text', 'description', 'content', 'thinking', 'command', 'prompt']);

/** The body with prose filled and ids made neutral; keys, types, enums and nesting as they were. */
export function anonymize(value: unknown, key = ''): unknown {
  if (typeof value === 'string') {
    if (key === 'user_id') return anonymizeUserId(value);
    if (key === 'id' || key === 'tool_use_id' || key === 'signature') return value.replace(/[A-Za-z0-9]/g, '0');
    return proseKeys.has(key) && !value.startsWith('x-anthropic-billing-header:') ? fillText(value) : value;
  }
  if (Array.isArray(value)) return value.map((item) => anonymize(item, key === 'content' ? '' : key));
  if (value !== null && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, anonymize(v, k)]));
  return value;
}

/** metadata.user_id is a JSON string of device, account and session ids: zeroes of the same length. */
function anonymizeUserId(text: string): string {
  try {
    const ids = JSON.parse(text) as Record<string, string>;
    return JSON.stringify(Object.fromEntries(Object.entries(ids).map(([k, v]) => [k, v.replace(/[0-9a-f]/g, '0')])));
  } catch {
    return text.replace(/[0-9a-f]/g, '0');
  }
}

/** The request's headers without credentials or per-session ids; the list and order stay. */
function keptHeaders(headers: IncomingHttpHeaders): Record<string, string> {
  const kept: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (name === 'authorization' || name === 'x-api-key') continue;
    const text = Array.isArray(value) ? value.join(', ') : (value ?? '');
    kept[name] = /session-id|request-id/.test(name) ? text.replace(/[0-9a-f]/g, '0') : name === 'host' ? '127.0.0.1' : text;
  }
  return kept;
}

function anonymizedRequest(path: string, headers: IncomingHttpHeaders, body: unknown): CapturedRequest {
  const filled = anonymize(body);
  const kept = keptHeaders(headers);
  if (kept['content-length'] !== undefined) kept['content-length'] = String(Buffer.byteLength(JSON.stringify(filled)));
  return { method: 'POST', path, headers: kept, body: filled };
}

export async function startCaptureProxy(target: string): Promise<CaptureProxy> {
  const upstream = new URL(target);
  let captured: CapturedRequest | undefined;
  const server = createServer((incoming, outgoing) => {
    const chunks: Buffer[] = [];
    incoming.on('data', (chunk: Buffer) => chunks.push(chunk));
    incoming.on('end', () => {
      const raw = Buffer.concat(chunks);
      const path = incoming.url ?? '/';
      if (captured === undefined && incoming.method === 'POST' && path.startsWith('/v1/messages?')) {
        const body = JSON.parse(raw.toString('utf8')) as { tools?: unknown[] };
        if ((body.tools?.length ?? 0) > 0) captured = anonymizedRequest(path, incoming.headers, body);
      }
      const forward = request({ host: upstream.hostname, port: upstream.port, method: incoming.method, path, headers: incoming.headers }, (answer) => {
        outgoing.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(outgoing);
      });
      forward.on('error', () => outgoing.destroy());
      forward.end(raw);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    captured: () => captured,
    close: () => {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
