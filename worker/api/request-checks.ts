/**
 * Checks every API family's routes make the same way, each wording its errors in its own API's style:
 * which zod issue names the field at fault, and whether the model a request names is the one served.
 */
import type { z } from 'zod';
import { BadRequestError, ErrorCode, SemanticError } from '../../shared/errors.js';
import type { ModelSummary } from '../../shared/protocol/messages.js';
import type { GenerationEngine } from '../generation.js';

export type Issue = z.core.$ZodIssue;

/**
 * The issue to report. For a union (string-or-parts content, string-or-array stop) zod reports every
 * branch; the branch that got past the type check says what is really wrong, so report that one.
 */
export function deepestIssue(issue: Issue): Issue {
  if (issue.code !== 'invalid_union') return issue;
  const branches = issue.errors.filter((branch) => branch.length > 0 && !branch.every((i) => i.code === 'invalid_type' && i.path.length === 0));
  const inner = branches[0]?.[0];
  return inner === undefined ? issue : deepestIssue({ ...inner, path: [...issue.path, ...inner.path] });
}

/** How an API family words a bad body: an unknown field, and a field with a bad value. */
export interface IssueWording {
  unknownField(param: string): string;
  badField(param: string, message: string): string;
}

/** The 400 for a body its schema refused, naming the field at fault (`param` is its dotted path). */
export function badRequestOf(error: z.ZodError, wording: IssueWording): BadRequestError {
  const first = error.issues[0];
  if (first === undefined) return new BadRequestError('The request body is invalid.');
  const issue = deepestIssue(first);
  if (issue.code === 'unrecognized_keys') {
    const param = [...issue.path.map(String), issue.keys[0] ?? ''].join('.');
    return new BadRequestError(wording.unknownField(param), param);
  }
  if (issue.path.length === 0) return new BadRequestError(`The request body must be a JSON object: ${issue.message}`);
  const param = issue.path.map(String).join('.');
  return new BadRequestError(wording.badField(param, issue.message), param);
}

/** The ids the served model answers to: its own, then its aliases (`modelAlias`), as /v1/models lists them. */
export function servedIds(engine: Pick<GenerationEngine, 'modelAliases'>, model: Pick<ModelSummary, 'id'>): string[] {
  return [model.id, ...(engine.modelAliases ?? []).filter((alias) => alias !== model.id)];
}

/**
 * The model a request names must be the one this server runs, by its id or an alias; `describe` words
 * the 404 the API's way.
 */
export function servedModel(
  engine: Pick<GenerationEngine, 'model' | 'unavailable' | 'modelAliases'>,
  requested: string,
  describe: (requested: string, served: string) => string,
): ModelSummary {
  const unavailable = engine.unavailable();
  if (unavailable !== undefined) throw SemanticError.fromPayload(unavailable);
  const model = engine.model;
  if (model === undefined) throw new SemanticError(ErrorCode.NotReady, 'The model is still loading.', { retryAfter: 1 });
  if (!servedIds(engine, model).includes(requested)) throw new SemanticError(ErrorCode.ModelNotFound, describe(requested, model.id), { param: 'model' });
  return model;
}
