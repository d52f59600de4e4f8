/**
 * The two servers `bench/vs-llama-server.ts` compares, behind one interface: Semantic (`semantic
 * serve`) and llama-server, started one at a time on the same GGUF with matched settings, and the
 * HTTP client both are driven by. Requests go through node:http rather than fetch: fetch gives up on
 * a response whose headers take over 300 s, and a cold 15K-token prefill on 2 cores takes longer.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, openSync } from 'node:fs';
import { Agent, request, type IncomingHttpHeaders } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { startServer, type RunningServer } from '../test/helpers/server.js';
import { addonLibraryDir, ensureLlamaServer, stageOnLibraries } from './llama-server-build.js';

export type Kind = 'semantic' | 'llama-server';

/**
 * Settings both servers run with (4 sequences, a 16K unified context, 2 threads, no flash attention
 * unless the bench's `--flash-attention` turns it on for both).
 */
export const settings = { sequences: 4, context: 16384, threads: 2, batch: 512, ramCacheMiB: 4096, flashAttention: false, httpThreads: 16, maxQueued: 64 };

export interface Target {
  kind: Kind;
  url: string;
  /** Stops the server and starts it again: Semantic on the same cache dir, llama-server from nothing. */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

export function semanticArgs(model: string, cacheDir: string): string[] {
  return [
    'serve',
    '--port',
    '0',
    '--model',
    model,
    '--model-id',
    'bench',
    '--max-sequences',
    String(settings.sequences),
    '--context-size',
    String(settings.context),
    '--kv-unified',
    'true',
    '--threads',
    String(settings.threads),
    '--flash-attention',
    String(settings.flashAttention),
    '--batch-tokens',
    String(settings.batch),
    '--ram-cache-bytes',
    String(settings.ramCacheMiB * 1024 * 1024),
    '--max-queued',
    String(settings.maxQueued),
    '--cache-dir',
    cacheDir,
  ];
}

/**
 * llama-server's HTTP threads default to the core count (2 here), and each keeps a kept-alive
 * connection for up to its read timeout: this client's idle pooled sockets then hold every thread
 * and the server stops answering (seen in the decode workload). 16 threads serve it as any pool would.
 */
export function llamaServerArgs(model: string, port: number): string[] {
  return [
    '--threads-http',
    String(settings.httpThreads),
    '-m',
    model,
    '--alias',
    'bench',
    '-np',
    String(settings.sequences),
    '-c',
    String(settings.context),
    '--kv-unified',
    '-t',
    String(settings.threads),
    '-tb',
    String(settings.threads),
    '-fa',
    settings.flashAttention ? 'on' : 'off',
    '-b',
    String(settings.batch),
    '-ub',
    String(settings.batch),
    '--cache-ram',
    String(settings.ramCacheMiB),
    '--port',
    String(port),
    '--host',
    '127.0.0.1',
  ];
}

/** Servers still running: killed if the benchmark exits early (an error, Ctrl-C), so none outlives it. */
const children = new Set<ChildProcess>();
const track = (child: ChildProcess): ChildProcess => {
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
};
process.once('exit', () => children.forEach((child) => child.kill('SIGKILL')));
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(130));

async function semantic(model: string, cacheDir: string): Promise<RunningServer> {
  const server = await startServer(semanticArgs(model, cacheDir));
  track(server.child);
  return server;
}

export async function startSemantic(model: string): Promise<Target> {
  const cacheDir = mkdtempSync(join(tmpdir(), 'bench-vs-semantic-'));
  let server = await semantic(model, cacheDir);
  const target: Target = {
    kind: 'semantic',
    url: server.url,
    restart: async () => {
      await server.stop(); // drains: every agent's cache file is written before it exits
      server = await semantic(model, cacheDir);
      target.url = server.url;
    },
    stop: async () => void (await server.stop()),
  };
  return target;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer().listen(0, '127.0.0.1', () => {
      const address = probe.address();
      probe.close(() => (typeof address === 'object' && address !== null ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

/** Starts llama-server and polls /health until the model is loaded (it answers 503 before). */
async function spawnLlamaServer(binary: string, model: string, log: string): Promise<{ child: ChildProcess; url: string }> {
  const port = await freePort();
  const out = openSync(log, 'a');
  const child = track(spawn(binary, llamaServerArgs(model, port), { stdio: ['ignore', out, out], env: { ...process.env, LD_LIBRARY_PATH: dirname(binary) } }));
  const url = `http://127.0.0.1:${port}`;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`llama-server exited with ${child.exitCode}; see ${log}`);
    const ok = await get(`${url}/health`).then(
      (status) => status === 200,
      () => false,
    );
    if (ok) return { child, url };
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

function kill(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    // llama-server can hang on exit while clients hold connections: SIGKILL after 10 s.
    const force = setTimeout(() => child.kill('SIGKILL'), 10_000);
    child.once('exit', () => {
      clearTimeout(force);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

/** Either server on the model, llama-server built (once) and staged on the addon's libraries. */
export function startTarget(kind: Kind, model: string): Promise<Target> {
  return kind === 'semantic' ? startSemantic(model) : startLlamaServer(stageOnLibraries(ensureLlamaServer(), addonLibraryDir()), model);
}

export async function startLlamaServer(binary: string, model: string): Promise<Target> {
  const log = join(mkdtempSync(join(tmpdir(), 'bench-vs-llama-')), 'llama-server.log');
  let running = await spawnLlamaServer(binary, model, log);
  const target: Target = {
    kind: 'llama-server',
    url: running.url,
    restart: async () => {
      await kill(running.child);
      running = await spawnLlamaServer(binary, model, log);
      target.url = running.url;
    },
    stop: () => kill(running.child),
  };
  return target;
}

const agent = new Agent({ keepAlive: true });

function get(url: string): Promise<number> {
  return getText(url).then((raw) => raw.status);
}

function getText(url: string): Promise<Raw> {
  return new Promise((resolve, reject) => {
    request(url, { agent }, (response) => {
      let text = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (text += chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, headers: response.headers, body: text }));
    })
      .on('error', reject)
      .end();
  });
}

/** Semantic's time inside llama_decode so far (the addon's own count, /debug/engine), in ms. */
async function semanticDecodeMs(target: Target): Promise<number> {
  const raw = await getText(`${target.url}/debug/engine`);
  const stats = JSON.parse(raw.body) as { timings?: { native?: { decodeMs?: number } } };
  return stats.timings?.native?.decodeMs ?? NaN;
}

interface Raw {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/** POSTs JSON; `onData` sees the body's text as it arrives (for SSE). */
function post(url: string, body: unknown, headers: Record<string, string>, onData?: (text: string) => void): Promise<Raw> {
  const payload = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    // A stream gets its own connection: llama-server closes the socket after an SSE response, and a
    // pooled socket reused after that close fails with ECONNRESET ("socket hang up").
    const req = request(
      url,
      { method: 'POST', agent: onData === undefined ? agent : false, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload), ...headers } },
      (response) => {
        let text = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => {
          text += chunk;
          onData?.(chunk);
        });
        response.on('end', () => resolve({ status: response.statusCode ?? 0, headers: response.headers, body: text }));
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

export interface Message {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

export interface Turn {
  ms: number;
  /** The prompt's tokens as the server counts them (usage.prompt_tokens). */
  promptTokens: number;
  /** Prompt tokens actually prefilled: Semantic's X-Semantic-Prompt-Tokens-Computed, llama-server's timings.prompt_n. */
  computed: number;
  completionTokens: number;
  /** Time inside llama_decode for this request: Semantic's /debug/engine decodeMs before and after it, llama-server's timings (prompt + predicted). */
  engineMs: number;
  content: string;
  /** Semantic's X-Semantic-Cache (hot, ram, disk, miss); '-' for llama-server. */
  tier: string;
}

interface Completion {
  choices?: { message?: { content?: string } }[];
  usage?: { prompt_tokens: number; completion_tokens: number };
  timings?: { prompt_n: number; prompt_ms?: number; predicted_ms?: number };
}

/** One greedy, non-streamed chat completion; with max_tokens 1 its time is the time to first token. */
export async function chat(target: Target, agentId: string, messages: Message[], maxTokens = 1): Promise<Turn> {
  const decodedBefore = target.kind === 'semantic' ? await semanticDecodeMs(target) : 0;
  const start = performance.now();
  const raw = await post(`${target.url}/v1/chat/completions`, { model: 'bench', messages, max_tokens: maxTokens, temperature: 0 }, { 'x-agent-id': agentId });
  const ms = performance.now() - start;
  if (raw.status !== 200) throw new Error(`${target.kind}: ${raw.status} ${raw.body.slice(0, 500)}`);
  const json = JSON.parse(raw.body) as Completion;
  const computedHeader = raw.headers['x-semantic-prompt-tokens-computed'];
  return {
    ms,
    promptTokens: json.usage?.prompt_tokens ?? NaN,
    computed: target.kind === 'semantic' ? Number(computedHeader) : (json.timings?.prompt_n ?? NaN),
    completionTokens: json.usage?.completion_tokens ?? NaN,
    engineMs: target.kind === 'semantic' ? (await semanticDecodeMs(target)) - decodedBefore : (json.timings?.prompt_ms ?? NaN) + (json.timings?.predicted_ms ?? NaN),
    content: json.choices?.[0]?.message?.content ?? '',
    tier: String(raw.headers['x-semantic-cache'] ?? '-'),
  };
}

/** What one stream saw: its first content chunk, its end, the times of all its content chunks (all from `origin`), and its tokens (usage). */
export interface Streamed {
  first: number;
  end: number;
  chunks: number[];
  tokens: number;
}

/**
 * `completions` sends `content` as a raw prompt to /v1/completions: no chat template, and no chat
 * output parser. The decode workload uses it because llama-server v0.4.0's chat parser ends a stream
 * with a 500 event ("does not match the expected peg-native format") when the random-weight model
 * emits invalid UTF-8, which v0.5.0's parser tolerates; decode speed does not depend on the template.
 */
export type StreamRoute = 'chat' | 'completions';

/** One greedy streamed completion of `maxTokens` tokens, timed chunk by chunk. */
export async function stream(target: Target, agentId: string, content: string, maxTokens: number, origin: number, route: StreamRoute = 'chat'): Promise<Streamed> {
  const chunks: number[] = [];
  let tokens = NaN;
  let buffer = '';
  const onData = (text: string): void => {
    buffer += text;
    let end: number;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const data = buffer.slice(0, end).replace(/^data: /, '');
      buffer = buffer.slice(end + 2);
      if (!data.startsWith('{')) continue;
      const chunk = JSON.parse(data) as { choices?: { delta?: { content?: string }; text?: string }[]; usage?: { completion_tokens: number } | null };
      const choice = chunk.choices?.[0];
      if ((choice?.delta?.content ?? choice?.text ?? '') !== '') chunks.push(performance.now() - origin);
      if (chunk.usage) tokens = chunk.usage.completion_tokens;
    }
  };
  const input = route === 'chat' ? { messages: [{ role: 'user', content }] } : { prompt: content };
  const body = { model: 'bench', ...input, max_tokens: maxTokens, temperature: 0, stream: true, stream_options: { include_usage: true } };
  const path = route === 'chat' ? '/v1/chat/completions' : '/v1/completions';
  const raw = await post(`${target.url}${path}`, body, { 'x-agent-id': agentId }, onData);
  if (raw.status !== 200) throw new Error(`${target.kind}: ${raw.status} ${raw.body.slice(0, 500)}`);
  return { first: chunks[0] ?? NaN, end: performance.now() - origin, chunks, tokens };
}

/** Warms this client's HTTP path and the server's weights up, so the first timed request measures the server. */
export async function warmUp(target: Target): Promise<void> {
  for (let i = 0; i < 10; i++) await get(`${target.url}/health${target.kind === 'semantic' ? '/live' : ''}`);
  await chat(target, 'warm-up', [{ role: 'user', content: 'Warm up.' }], 4);
}

const WORDS = (
  'time people year way day man thing woman life child world school state family student group country problem hand part ' +
  'place case week company system program question work government number night point home water room mother area money story fact month ' +
  'lot right study book eye job word business issue side kind head house service friend father power hour game line end member law car city ' +
  'community name president team minute idea kid body information back parent face others level office door health person art war history ' +
  'party result change morning reason research girl guy moment air teacher force education good new first last long great little own other ' +
  'old big high different small large next early young important few public bad same able make know take see come think look want give use ' +
  'find tell ask seem feel try leave call keep let begin show hear play run move like live believe hold bring happen write provide sit stand ' +
  'lose pay meet include continue set learn lead understand watch follow stop create speak read allow add spend grow open walk win offer'
).split(' ');

/** mulberry32 seeded from a string: the same words on every run and platform. */
function random(seed: string): () => number {
  let a = [...seed].reduce((h, c) => Math.imul(h ^ c.charCodeAt(0), 16777619) >>> 0, 2166136261);
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** About `tokens` tokens of English-ish sentences (common words are one token each in Qwen's vocabulary). */
export function words(tokens: number, seed: string): string {
  const next = random(seed);
  const out: string[] = [];
  let count = 0;
  while (count < tokens) {
    const length = 6 + Math.floor(next() * 10);
    const sentence = Array.from({ length }, () => WORDS[Math.floor(next() * WORDS.length)] ?? 'word');
    out.push(sentence.join(' ') + '.');
    count += length + 1;
  }
  return out.join(' ');
}
