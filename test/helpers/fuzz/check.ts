/**
 * Sends a fuzz request over real HTTP (node:http, one keep-alive agent, as a normal client) and says
 * which invariants its answer broke: no 5xx, an answer at all (no reset, no hang), every error body in
 * its API's own shape, a 200 that is whole, and an agent id outside the id alphabet never accepted.
 * The server's resident memory is read from its own /metrics (prom-client's process metrics).
 */
import { Agent, request, type IncomingHttpHeaders } from 'node:http';
import type { Family, FuzzRequest } from './requests.js';

export interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

export type ViolationKind = 'server-error' | 'no-answer' | 'error-shape' | 'broken-success' | 'agent-id-accepted';

export interface Violation {
  kind: ViolationKind;
  detail: string;
}

/** Longer than any valid fuzz request takes (they ask for at most 3 tokens); a hang is a violation. */
const answerTimeoutMs = 30_000;

export function send(baseUrl: string, fuzz: FuzzRequest, agent: Agent): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const outgoing = request(baseUrl + fuzz.endpoint.path, { method: 'POST', headers: fuzz.headers, agent, timeout: answerTimeoutMs }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, headers: response.headers, body: Buffer.concat(chunks) }));
      response.on('error', reject);
      response.on('close', () => {
        if (!response.complete) reject(new Error(`response cut after ${Buffer.concat(chunks).length} bytes (status ${response.statusCode})`));
      });
    });
    outgoing.on('timeout', () => outgoing.destroy(new Error(`no answer within ${answerTimeoutMs} ms`)));
    outgoing.on('error', reject);
    outgoing.end(fuzz.body);
  });
}

function parseJson(body: Buffer): unknown {
  try {
    return JSON.parse(body.toString('utf8')) as unknown;
  } catch {
    return undefined;
  }
}

const isText = (value: unknown): boolean => typeof value === 'string' && value.length > 0;
const record = (value: unknown): Record<string, unknown> | undefined =>
  typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;

/** OpenAI: `{error: {message, type, param?, code}}`; Anthropic: `{type: 'error', error: {type, message}}`. */
export function isErrorShape(family: Family, body: unknown): boolean {
  const error = record(record(body)?.error);
  if (error === undefined || !isText(error.message) || !isText(error.type)) return false;
  if (family === 'anthropic') return record(body)?.type === 'error';
  return 'code' in error && (error.code === null || typeof error.code === 'string');
}

/** Optional whitespace around a header value is not part of it (RFC 9110 §5.5), so it is trimmed before judging. */
const idAlphabet = /^[A-Za-z0-9_:-][A-Za-z0-9._:-]{0,127}$/;

/** The id the request names by header (X-Agent-ID first, as shared/agent-id.ts reads them), if any. */
function namedAgent(fuzz: FuzzRequest): string | undefined {
  const value = fuzz.headers['x-agent-id'] ?? fuzz.headers['x-session-id'];
  const trimmed = value?.replace(/^[ \t]+|[ \t]+$/g, '');
  return trimmed === '' ? undefined : trimmed;
}

function checkSuccess(fuzz: FuzzRequest, answer: Answer): Violation[] {
  const violations: Violation[] = [];
  const agent = namedAgent(fuzz);
  if (fuzz.endpoint.namesAgent && agent !== undefined && !idAlphabet.test(agent)) {
    violations.push({ kind: 'agent-id-accepted', detail: `${answer.status} for the agent id ${JSON.stringify(agent)} (bytes ${Buffer.from(agent, 'latin1').toString('hex')})` });
  }
  const streamed = String(answer.headers['content-type']).startsWith('text/event-stream');
  if (!streamed && parseJson(answer.body) === undefined)
    violations.push({ kind: 'broken-success', detail: `${answer.status} with a body that is not JSON: ${answer.body.subarray(0, 120).toString()}` });
  return violations;
}

/** Every invariant the answer (or the failure to get one) breaks; empty when it keeps them all. */
export function violationsOf(fuzz: FuzzRequest, outcome: Answer | Error): Violation[] {
  if (outcome instanceof Error) return [{ kind: 'no-answer', detail: outcome.message }];
  const { status, body } = outcome;
  if (status >= 500) return [{ kind: 'server-error', detail: `${status}: ${body.subarray(0, 300).toString()}` }];
  if (status >= 200 && status < 300) return checkSuccess(fuzz, outcome);
  if (status >= 400 && !isErrorShape(fuzz.endpoint.family, parseJson(body))) {
    return [{ kind: 'error-shape', detail: `${status} not in the ${fuzz.endpoint.family} error shape: ${body.subarray(0, 300).toString()}` }];
  }
  return [];
}

/** Sends the request and checks its answer; `status` is the answer's, or 'no answer'. */
export async function probe(baseUrl: string, fuzz: FuzzRequest, agent: Agent): Promise<{ violations: Violation[]; status: string }> {
  const outcome = await send(baseUrl, fuzz, agent).catch((error: unknown) => (error instanceof Error ? error : new Error(String(error))));
  return { violations: violationsOf(fuzz, outcome), status: outcome instanceof Error ? 'no answer' : String(outcome.status) };
}

/** The server's resident set size in bytes, from its /metrics. */
export async function residentBytes(baseUrl: string): Promise<number> {
  const text = await (await fetch(`${baseUrl}/metrics`)).text();
  const line = /^process_resident_memory_bytes (\d+)$/m.exec(text);
  if (line === null) throw new Error('/metrics has no process_resident_memory_bytes');
  return Number(line[1]);
}

/** A request as readable text, for a failure report: route, headers and the start of the body. */
export function describeRequest(fuzz: FuzzRequest): string {
  const body = fuzz.body.length > 400 ? `${fuzz.body.subarray(0, 400).toString()}… (${fuzz.body.length} bytes)` : fuzz.body.toString();
  return `POST ${fuzz.endpoint.path} [${fuzz.mutations.join(', ') || 'valid-ish'}] headers=${JSON.stringify(fuzz.headers)} body=${body}`;
}
