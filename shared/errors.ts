/**
 * The one error module. Every failure the product reports has a stable `code`; code is what crosses
 * thread and process boundaries (prototypes do not survive msgpack) and what callers match on.
 * `describeError` is the single table from code to HTTP status, API error types and metric label:
 * the engine never picks a status, only the HTTP layer does, through this table. Codes are listed
 * with their meaning in docs/errors.md.
 */

export const ErrorCode = {
  BadRequest: 'ERR_BAD_REQUEST',
  InvalidJson: 'ERR_INVALID_JSON',
  BodyTooLarge: 'ERR_BODY_TOO_LARGE',
  NotFound: 'ERR_NOT_FOUND',
  MethodNotAllowed: 'ERR_METHOD_NOT_ALLOWED',
  ModelNotFound: 'ERR_MODEL_NOT_FOUND',
  ResponseNotFound: 'ERR_RESPONSE_NOT_FOUND',
  Conflict: 'ERR_CONFLICT',
  ContextExceeded: 'ERR_CONTEXT_EXCEEDED',
  PoolExhausted: 'ERR_POOL_EXHAUSTED',
  QueueFull: 'ERR_QUEUE_FULL',
  AgentQueueFull: 'ERR_AGENT_QUEUE_FULL',
  Draining: 'ERR_DRAINING',
  NotReady: 'ERR_NOT_READY',
  EngineDead: 'ERR_ENGINE_DEAD',
  Protocol: 'ERR_PROTOCOL',
  Aborted: 'ERR_ABORTED',
  Unauthorized: 'ERR_UNAUTHORIZED',
  Forbidden: 'ERR_FORBIDDEN',
  ModelPathForbidden: 'ERR_MODEL_PATH_FORBIDDEN',
  RateLimited: 'ERR_RATE_LIMITED',
  ModelLoadFailed: 'ERR_MODEL_LOAD_FAILED',
  MalformedHttp: 'ERR_MALFORMED_HTTP',
  MethodNotImplemented: 'ERR_METHOD_NOT_IMPLEMENTED',
  RequestTimeout: 'ERR_REQUEST_TIMEOUT',
  HeadersTooLarge: 'ERR_HEADERS_TOO_LARGE',
  UnsupportedMediaType: 'ERR_UNSUPPORTED_MEDIA_TYPE',
  Internal: 'ERR_INTERNAL',
} as const;

export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/** An error as it travels: a plain object, safe to msgpack and to log. */
export interface ErrorPayload {
  code: ErrorCode;
  message: string;
  /** The request field or header at fault, for 400s (OpenAI's `param`). */
  param?: string;
  /** Seconds a client should wait before retrying (429, 503). */
  retryAfter?: number;
}

export class SemanticError extends Error {
  readonly code: ErrorCode;
  readonly param: string | undefined;
  readonly retryAfter: number | undefined;

  constructor(code: ErrorCode, message: string, options: { param?: string; retryAfter?: number; cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.name = 'SemanticError';
    this.code = code;
    this.param = options.param;
    this.retryAfter = options.retryAfter;
  }

  toPayload(): ErrorPayload {
    const payload: ErrorPayload = { code: this.code, message: this.message };
    if (this.param !== undefined) payload.param = this.param;
    if (this.retryAfter !== undefined) payload.retryAfter = this.retryAfter;
    return payload;
  }

  static fromPayload(payload: ErrorPayload): SemanticError {
    return new SemanticError(payload.code, payload.message, payload);
  }
}

export class BadRequestError extends SemanticError {
  constructor(message: string, param?: string) {
    super(ErrorCode.BadRequest, message, param === undefined ? {} : { param });
  }
}

export class ContextExceededError extends SemanticError {
  constructor(requested: number, available: number) {
    super(ErrorCode.ContextExceeded, `This request needs ${requested} tokens (prompt + max_tokens) but the context holds ${available}.`, { param: 'max_tokens' });
  }
}

export class ProtocolError extends SemanticError {
  constructor(message: string) {
    super(ErrorCode.Protocol, message);
  }
}

/** The worker is shutting down: retry on another connection (or process) in a second. */
export function drainingError(message = 'the server is shutting down'): SemanticError {
  return new SemanticError(ErrorCode.Draining, message, { retryAfter: 1 });
}

export interface ErrorDescription {
  status: number;
  openaiType: string;
  anthropicType: string;
  /** Bounded label for rejection metrics. */
  metricLabel: string;
}

const table: Record<ErrorCode, ErrorDescription> = {
  ERR_BAD_REQUEST: { status: 400, openaiType: 'invalid_request_error', anthropicType: 'invalid_request_error', metricLabel: 'bad_request' },
  ERR_INVALID_JSON: { status: 400, openaiType: 'invalid_request_error', anthropicType: 'invalid_request_error', metricLabel: 'invalid_json' },
  ERR_BODY_TOO_LARGE: { status: 413, openaiType: 'invalid_request_error', anthropicType: 'request_too_large', metricLabel: 'body_too_large' },
  ERR_NOT_FOUND: { status: 404, openaiType: 'invalid_request_error', anthropicType: 'not_found_error', metricLabel: 'not_found' },
  ERR_METHOD_NOT_ALLOWED: { status: 405, openaiType: 'invalid_request_error', anthropicType: 'invalid_request_error', metricLabel: 'method_not_allowed' },
  ERR_MODEL_NOT_FOUND: { status: 404, openaiType: 'invalid_request_error', anthropicType: 'not_found_error', metricLabel: 'model_not_found' },
  ERR_RESPONSE_NOT_FOUND: { status: 404, openaiType: 'invalid_request_error', anthropicType: 'not_found_error', metricLabel: 'response_not_found' },
  ERR_CONFLICT: { status: 409, openaiType: 'invalid_request_error', anthropicType: 'invalid_request_error', metricLabel: 'conflict' },
  ERR_CONTEXT_EXCEEDED: { status: 400, openaiType: 'invalid_request_error', anthropicType: 'invalid_request_error', metricLabel: 'context_exceeded' },
  ERR_POOL_EXHAUSTED: { status: 429, openaiType: 'rate_limit_error', anthropicType: 'rate_limit_error', metricLabel: 'pool_exhausted' },
  ERR_QUEUE_FULL: { status: 429, openaiType: 'rate_limit_error', anthropicType: 'rate_limit_error', metricLabel: 'queue_full' },
  ERR_AGENT_QUEUE_FULL: { status: 429, openaiType: 'rate_limit_error', anthropicType: 'rate_limit_error', metricLabel: 'agent_queue_full' },
  ERR_DRAINING: { status: 503, openaiType: 'server_error', anthropicType: 'overloaded_error', metricLabel: 'draining' },
  ERR_NOT_READY: { status: 503, openaiType: 'server_error', anthropicType: 'overloaded_error', metricLabel: 'not_ready' },
  ERR_ENGINE_DEAD: { status: 503, openaiType: 'server_error', anthropicType: 'api_error', metricLabel: 'engine_dead' },
  ERR_PROTOCOL: { status: 500, openaiType: 'server_error', anthropicType: 'api_error', metricLabel: 'protocol' },
  ERR_ABORTED: { status: 499, openaiType: 'server_error', anthropicType: 'api_error', metricLabel: 'aborted' },
  ERR_UNAUTHORIZED: { status: 401, openaiType: 'invalid_request_error', anthropicType: 'authentication_error', metricLabel: 'unauthorized' },
  ERR_FORBIDDEN: { status: 403, openaiType: 'invalid_request_error', anthropicType: 'permission_error', metricLabel: 'forbidden' },
  ERR_MODEL_PATH_FORBIDDEN: { status: 403, openaiType: 'invalid_request_error', anthropicType: 'permission_error', metricLabel: 'model_path_forbidden' },
  ERR_RATE_LIMITED: { status: 429, openaiType: 'rate_limit_error', anthropicType: 'rate_limit_error', metricLabel: 'rate_limited' },
  // The server is fine (the old model serves again): the file given was the problem, like a 400 the
  // front could not see before trying. 422, not 400: the request was well-formed.
  ERR_MODEL_LOAD_FAILED: { status: 422, openaiType: 'invalid_request_error', anthropicType: 'invalid_request_error', metricLabel: 'model_load_failed' },
  ERR_MALFORMED_HTTP: { status: 400, openaiType: 'invalid_request_error', anthropicType: 'invalid_request_error', metricLabel: 'malformed_http' },
  ERR_METHOD_NOT_IMPLEMENTED: { status: 501, openaiType: 'invalid_request_error', anthropicType: 'invalid_request_error', metricLabel: 'method_not_implemented' },
  ERR_REQUEST_TIMEOUT: { status: 408, openaiType: 'invalid_request_error', anthropicType: 'invalid_request_error', metricLabel: 'request_timeout' },
  ERR_HEADERS_TOO_LARGE: { status: 431, openaiType: 'invalid_request_error', anthropicType: 'invalid_request_error', metricLabel: 'headers_too_large' },
  ERR_UNSUPPORTED_MEDIA_TYPE: { status: 415, openaiType: 'invalid_request_error', anthropicType: 'invalid_request_error', metricLabel: 'unsupported_media_type' },
  ERR_INTERNAL: { status: 500, openaiType: 'server_error', anthropicType: 'api_error', metricLabel: 'internal' },
};

export function describeError(code: ErrorCode): ErrorDescription {
  return table[code];
}

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.hasOwn(table, value);
}

/** Turns anything thrown into a payload; unknown failures become ERR_INTERNAL (a bug, logged by the caller). */
export function toErrorPayload(error: unknown): ErrorPayload {
  if (error instanceof SemanticError) return error.toPayload();
  const code = (error as { code?: unknown } | null)?.code;
  const message = error instanceof Error ? error.message : String(error);
  return { code: isErrorCode(code) ? code : ErrorCode.Internal, message };
}
