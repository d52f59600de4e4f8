/**
 * How both OpenAI endpoints (chat completions, legacy completions) serve a parsed request: the served
 * model, the agent and its rate limit, then the generation run (run-generation.ts) through the OpenAI
 * sink. An endpoint only says how its requests name their agent, become a generate message, and are
 * worded.
 */
import { agentTerms, resolveAgent } from '../../../shared/agent-id.js';
import type { ChatMessage, GenerateMessage, ModelSummary } from '../../../shared/protocol/messages.js';
import type { GenerationEngine } from '../../generation.js';
import type { AgentGate } from '../../http/rate-limit.js';
import type { RequestContext } from '../../http/router.js';
import { servedModel } from '../request-checks.js';
import { runGeneration } from '../run-generation.js';
import { newCompletionMeta } from './bodies.js';
import type { OutputReader } from './output.js';
import { completionJsonSink, completionStreamSink, type CompletionFormat } from './sink.js';

/** The fields both endpoints' requests share that serving them reads. */
export interface OpenAIRequest {
  model: string;
  user?: string | null | undefined;
  stream?: boolean | null | undefined;
  stream_options?: { include_usage?: boolean | null | undefined } | null | undefined;
}

/** A request ready to run: its protocol message, and how its output is read. */
export interface PreparedRequest {
  message: GenerateMessage;
  output: OutputReader;
}

/** One OpenAI endpoint: how its requests name their agent, become a generate message, and are worded. */
export interface OpenAIEndpoint<R extends OpenAIRequest> {
  /** `chatcmpl` or `cmpl`, as OpenAI's ids. */
  idPrefix: string;
  format: CompletionFormat;
  /** What names the agent when neither a header nor `user` does (shared/agent-id.ts). */
  opening(request: R): ChatMessage[];
  /** `model`: the served model, whose tool-call syntax chat requests with tools need. */
  prepare(request: R, requestId: string, agentId: string, model: ModelSummary): PreparedRequest;
}

/** The model a request names must be the one served; OpenAI's wording of the 404. */
const notServed = (requested: string, served: string): string => `The model '${requested}' does not exist; this server runs '${served}'.`;

export function serveOpenAI<R extends OpenAIRequest>(context: RequestContext, engine: GenerationEngine, agentGate: AgentGate, request: R, endpoint: OpenAIEndpoint<R>): void {
  const model = servedModel(engine, request.model, notServed);
  const { agentId, derived } = resolveAgent({
    headers: context.exchange.headers,
    bodyField: { value: request.user ?? undefined, param: 'user' },
    messages: endpoint.opening(request),
  });
  const shareScope = agentGate(agentId, context.exchange.headers);
  const { message, output } = endpoint.prepare(request, context.requestId, agentId, model);
  const completion = { format: endpoint.format, meta: newCompletionMeta(model.id, Date.now(), endpoint.idPrefix), output };
  const sink = request.stream === true ? completionStreamSink(completion, request.stream_options?.include_usage === true) : completionJsonSink(completion);
  runGeneration(context, engine, agentTerms(message, shareScope, derived), sink);
}
