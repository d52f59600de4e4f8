/**
 * Which agent a request belongs to, first found wins: header `X-Agent-ID`, header `X-Session-ID`,
 * body `user` (OpenAI) or `metadata.user_id` (Anthropic), else a hash of the conversation's opening
 * (every message up to and including the first user message), so stateless clients that resend
 * their history still come back to their cache. The id also names the agent's cache file, so it is
 * validated here, on the front, before anything else sees it. Only a named agent's requests keep
 * their arrival order: a derived one's are independent requests that happen to open alike.
 */
import { createHash } from 'node:crypto';
import { BadRequestError } from './errors.js';
import type { GenerateMessage } from './protocol/messages.js';

/**
 * ASCII only, and no flags: `i` or `u` would let case folding admit non-ASCII look-alikes (U+212A
 * KELVIN SIGN folds to `k`). A header value reaches us as bytes decoded one char per byte (latin1), so
 * a UTF-8 id such as `🤖agent` arrives as `ð\u009f¤\u0096agent` and is refused here, never trimmed to
 * `agent`, which would merge two clients' caches.
 */
const validAgentId = /^[A-Za-z0-9_:-][A-Za-z0-9._:-]{0,127}$/;
const agentIdChar = /[A-Za-z0-9._:-]/;

export interface AgentIdSources {
  /** Lower-case header names to values. */
  headers: ReadonlyMap<string, string>;
  /**
   * OpenAI `user` or Anthropic `metadata.user_id`, with the field path used in errors. `opaque`: the
   * API allows any string there (Anthropic's user_id; Claude Code sends ~160 characters), so a value
   * that is not a valid agent id names the agent by its hash instead of being refused.
   */
  bodyField?: { value: string | undefined; param: string; opaque?: boolean };
  /** The conversation, for the derived id. */
  messages: readonly { role: string; content: string }[];
}

/** The id as given, or a 400 naming `param`: ids name cache files, so nothing else is let through. */
export function checkAgentId(value: string, param: string): string {
  if (!validAgentId.test(value)) {
    throw new BadRequestError(
      `${param} must be 1-128 characters of A-Z a-z 0-9 . _ : - and must not start with '.'; got ${JSON.stringify(value.slice(0, 140))}${offendingChar(value)}`,
      param,
    );
  }
  return value;
}

/** Names the first character outside the alphabet, so an invisible or non-ASCII one is found. */
function offendingChar(value: string): string {
  const chars = [...value];
  const index = chars.findIndex((char) => !agentIdChar.test(char));
  const codePoint = chars[index]?.codePointAt(0);
  if (codePoint === undefined) return '';
  return ` (character ${index} is U+${codePoint.toString(16).toUpperCase().padStart(4, '0')}, not allowed)`;
}

/** `conv-` + 16 hex digits of SHA-256 over the opening messages. */
export function conversationAgentId(messages: AgentIdSources['messages']): string {
  const firstUser = messages.findIndex((m) => m.role === 'user');
  const opening = messages.slice(0, firstUser < 0 ? messages.length : firstUser + 1).map((m) => [m.role, m.content]);
  return 'conv-' + createHash('sha256').update(JSON.stringify(opening)).digest('hex').slice(0, 16);
}

export function resolveAgentId(sources: AgentIdSources): string {
  return resolveAgent(sources).agentId;
}

/**
 * The agent, and whether its id was derived from the conversation (`derived`): no client named it,
 * so its requests are independent of each other and need not run in arrival order (agent-turns.ts).
 */
export function resolveAgent(sources: AgentIdSources): { agentId: string; derived: boolean } {
  const named = (agentId: string): { agentId: string; derived: boolean } => ({ agentId, derived: false });
  const agentHeader = sources.headers.get('x-agent-id');
  if (agentHeader !== undefined) return named(checkAgentId(agentHeader, 'X-Agent-ID'));
  const sessionHeader = sources.headers.get('x-session-id');
  if (sessionHeader !== undefined) return named(checkAgentId(sessionHeader, 'X-Session-ID'));
  const field = sources.bodyField;
  if (field?.value !== undefined) {
    if (field.opaque === true && !validAgentId.test(field.value)) return named('user-' + createHash('sha256').update(field.value).digest('hex').slice(0, 16));
    return named(checkAgentId(field.value, field.param));
  }
  return { agentId: conversationAgentId(sources.messages), derived: true };
}

/** The generation with whom it shares prefixes (absent: nobody) and whether its agent id was derived. */
export function agentTerms<M extends GenerateMessage>(message: M, shareScope: string | undefined, derived: boolean): M {
  return { ...message, ...(shareScope === undefined ? {} : { shareScope }), ...(derived ? { agentIdDerived: true } : {}) };
}
