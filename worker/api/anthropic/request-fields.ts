/**
 * The Messages fields beyond the basics that current clients send (Claude Code sends thinking,
 * context_management and cache_control on every request, newer SDKs the beta fields), taken from the
 * `@anthropic-ai/sdk` type definitions, `beta` included. The rule: a request the real API takes never
 * fails here because of its shape. Each field is either used, or accepted and ignored where ignoring it
 * changes nothing a client relies on; a field asking for something that runs on Anthropic's side and
 * not here (MCP servers) gets a 400 saying so, rather than an answer that silently lacks it.
 */
import { z } from 'zod';
import { BadRequestError } from '../../../shared/errors.js';

/**
 * `cache_control` is accepted on system, message and tool blocks, and at the top level: every agent's
 * prompt is cached whether it asks or not. Its presence changes how usage is reported (bodies.ts).
 */
export const cacheControl = z.object({ type: z.literal('ephemeral'), ttl: z.enum(['5m', '1h']).optional() }).nullish();

const thinkingDisplay = { display: z.enum(['summarized', 'omitted', 'updates']).nullish(), block_binding: z.unknown().optional() };

/** The real API's floor on a thinking budget. */
export const minThinkingBudget = 1024;

/**
 * Extended thinking: `enabled` with a budget, `adaptive` (the model decides), `disabled`, and
 * `between_tools`; what each does is in thinking.ts. A model that does not reason answers every one
 * of them without a thinking block. `display` is accepted and ignored: the thinking is always shown.
 */
export const thinkingConfig = z.discriminatedUnion('type', [
  z.object({
    type: z.literal('enabled'),
    budget_tokens: z
      .number({ error: (issue) => (issue.input === undefined ? 'Field required' : 'expected an integer') })
      .int()
      .min(minThinkingBudget, `Input should be greater than or equal to ${minThinkingBudget}`),
    ...thinkingDisplay,
  }),
  z.object({ type: z.literal('adaptive'), ...thinkingDisplay }),
  z.object({ type: z.literal('disabled') }),
  z.object({ type: z.literal('between_tools') }),
]);
export type ThinkingConfig = z.infer<typeof thinkingConfig>;

/** The real API checks the budget against max_tokens: thinking counts towards max_tokens. */
export function checkThinkingBudget(config: ThinkingConfig | null | undefined, maxTokens: number): void {
  if (config?.type !== 'enabled' || config.budget_tokens < maxTokens) return;
  throw new BadRequestError('max_tokens: `max_tokens` must be greater than `thinking.budget_tokens`.', 'max_tokens');
}

/** A structured-output format: the answer's text is JSON matching `schema`. */
const jsonSchemaFormat = z.object({ type: z.literal('json_schema'), schema: z.record(z.string(), z.unknown(), { error: 'expected a JSON Schema object' }) });

/**
 * Top-level fields accepted beside the basics. Used: `output_config.format` and `output_format` (the
 * answer is held to the schema by a grammar). Accepted and ignored, each for its reason:
 * - `context_management`: its edits clear old tool results or thinking to save the client's context;
 *   not applying them costs context, never correctness (the whole conversation is rendered);
 * - `container`: a sandbox for the code-execution server tool, which is refused anyway (schema.ts);
 * - `output_config.effort`, `output_config.task_budget`, `speed`, `inference_geo`, `service_tier`:
 *   there is one model at one speed in one place;
 * - `compaction`, `fallbacks`, `fallback_credit_token`, `billing_policy`, `thread`, `diagnostics`,
 *   `user_profile_id`, `workspace_id`: billing, routing and server-side bookkeeping of Anthropic's.
 * `mcp_servers` other than empty is a 400 (checkBetaFields): its tools would run on Anthropic's side.
 */
export const extraRequestFields = {
  cache_control: cacheControl,
  context_management: z.looseObject({ edits: z.array(z.looseObject({ type: z.string() })).optional() }).nullish(),
  container: z.union([z.string(), z.looseObject({})]).nullish(),
  mcp_servers: z.array(z.looseObject({ type: z.literal('url'), name: z.string(), url: z.string() })).nullish(),
  output_config: z.looseObject({ effort: z.enum(['low', 'medium', 'high', 'xhigh', 'max']).nullish(), format: jsonSchemaFormat.nullish() }).nullish(),
  output_format: jsonSchemaFormat.nullish(),
  service_tier: z.enum(['auto', 'standard_only']).nullish(),
  speed: z.enum(['standard', 'fast']).nullish(),
  inference_geo: z.string().nullish(),
  compaction: z.unknown().optional(),
  fallbacks: z.unknown().optional(),
  fallback_credit_token: z.unknown().optional(),
  billing_policy: z.unknown().optional(),
  thread: z.unknown().optional(),
  diagnostics: z.unknown().optional(),
  user_profile_id: z.string().optional(),
  workspace_id: z.string().optional(),
};

type ExtraFields = { [K in keyof typeof extraRequestFields]?: z.infer<(typeof extraRequestFields)[K]> };

/** Refusals the real API would not make, for what cannot run here; each says so. */
export function checkBetaFields(request: ExtraFields): void {
  if ((request.mcp_servers?.length ?? 0) > 0) {
    throw new BadRequestError('mcp_servers: MCP servers are not supported by this server: their tools run on the API side; give the tools as client tools instead', 'mcp_servers');
  }
}

/** The JSON Schema the answer must match, if the request asks for structured output. */
export function outputSchema(request: ExtraFields): { schema: Record<string, unknown>; param: string } | undefined {
  const config = request.output_config?.format;
  if (config !== null && config !== undefined) return { schema: config.schema, param: 'output_config.format.schema' };
  const legacy = request.output_format;
  if (legacy !== null && legacy !== undefined) return { schema: legacy.schema, param: 'output_format.schema' };
  return undefined;
}

type MaybeMarked = { cache_control?: unknown; content?: unknown };
const marked = (block: MaybeMarked): boolean => block.cache_control !== null && block.cache_control !== undefined;
const blocksOf = (content: unknown): MaybeMarked[] => (Array.isArray(content) ? (content as MaybeMarked[]) : []);

/**
 * Whether the request marked anything for caching (a `cache_control` at the top level, or on a system,
 * tool or message block, or on a block inside a tool result): the real API reports cache writes only then.
 */
export function asksForCaching(request: { cache_control?: unknown; system?: unknown; tools?: readonly MaybeMarked[] | null; messages: readonly { content?: unknown }[] }): boolean {
  if (marked(request)) return true;
  const blocks = [...blocksOf(request.system), ...(request.tools ?? []), ...request.messages.flatMap((m) => blocksOf(m.content))];
  return blocks.some((block) => marked(block) || blocksOf(block.content).some(marked));
}
