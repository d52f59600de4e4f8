/**
 * The house error shape: the body of every error that belongs to no API family of its own (the probes,
 * the operator routes, 404 and 405, a malformed HTTP request). It is laid out as OpenAI's error object,
 * the one most clients already parse; a family with its own shape (Anthropic) sets it on its routes.
 */
import { describeError, type ErrorPayload } from '../../shared/errors.js';

export interface HouseErrorBody {
  error: { message: string; type: string; param: string | null; code: string };
}

export function houseErrorBody(error: ErrorPayload): HouseErrorBody {
  return { error: { message: error.message, type: describeError(error.code).openaiType, param: error.param ?? null, code: error.code } };
}
