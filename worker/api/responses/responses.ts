/**
 * The OpenAI Responses API: `POST /v1/responses` (JSON or SSE), `GET` and `DELETE
 * /v1/responses/{id}`, and `POST /v1/responses/input_tokens`.
 *
 * A stored conversation is an agent. A response stored with no `previous_response_id` starts a chain
 * whose agent is named by the response's own id (or by `X-Agent-ID` / `X-Session-ID` when the client
 * names one); every follow-up turn runs as that agent's next turn, so its prompt, the stored history
 * plus the new input, is served from the agent's cache: only the new input is computed. The history
 * and the agent id live in the stored record (store.ts), so a chain survives restarts as its cache
 * does. `store: false` answers as chat completions do, the agent named by the headers, `user`, or
 * the conversation's opening. `DELETE` also forgets the agent's cache once no stored response of the
 * chain remains.
 */
import { agentTerms, resolveAgent } from '../../../shared/agent-id.js';
import { BadRequestError, ErrorCode, SemanticError } from '../../../shared/errors.js';
import type { ChatMessage, GenerateInput, GenerateMessage, ModelSummary, ReasoningRequest } from '../../../shared/protocol/messages.js';
import type { EngineClient } from '../../engine-client.js';
import type { GenerationEngine } from '../../generation.js';
import { noAgentLimit, type AgentGate } from '../../http/rate-limit.js';
import type { RequestContext, Route } from '../../http/router.js';
import { ToolCallStream } from '../../tools/tool-calls.js';
import { openAIErrorBody } from '../openai/bodies.js';
import { ReasoningStream, reasoningStartFor } from '../../tools/reasoning.js';
import { afterReasoning, firstCallOnly, textOutput, type OutputReader } from '../openai/output.js';
import type { ToolUse } from '../openai/tools.js';
import { reasoningForEffort } from '../reasoning-effort.js';
import { servedModel } from '../request-checks.js';
import { runGeneration } from '../run-generation.js';
import { defaultSampling } from '../sampling.js';
import { newId, type ResponseObject, type ResponseSettings } from './bodies.js';
import { appendInput, assistantTurn, promptMessages } from './conversation.js';
import { inputTokensSchema, parseResponsesBody, responseCreateSchema, type ConversationRequest, type ResponseCreateRequest } from './schema.js';
import { responseJsonSink, responseStreamSink } from './sink.js';
import { ResponseStore } from './store.js';
import { responsesToolUse } from './tools.js';

export type ResponsesEngine = GenerationEngine & Pick<EngineClient, 'agents'>;

const notServed = (requested: string, served: string): string => `The model '${requested}' does not exist; this server runs '${served}'.`;

function modelOf(engine: GenerationEngine, requested: string | null | undefined): ModelSummary {
  return servedModel(engine, requested ?? engine.model?.id ?? '', notServed);
}

/** A conversation ready to render: the stored turn it follows, its messages, its tool use. */
interface Conversation {
  previous: Awaited<ReturnType<ResponseStore['get']>>;
  /** Without the instructions: what a stored response keeps. */
  history: ChatMessage[];
  input: GenerateInput & { kind: 'chat' };
  tools: ToolUse;
}

async function conversationOf(request: ConversationRequest, store: ResponseStore, model: ModelSummary): Promise<Conversation> {
  const previousId = request.previous_response_id;
  const previous = previousId === null || previousId === undefined ? undefined : await store.get(previousId);
  if (previousId !== null && previousId !== undefined && previous === undefined) {
    throw new SemanticError(ErrorCode.ResponseNotFound, `Previous response with id '${previousId}' not found.`, { param: 'previous_response_id' });
  }
  const history = appendInput(previous?.history ?? [], request.input);
  const messages = promptMessages(request.instructions, history);
  if (messages.length === 0) throw new BadRequestError("Missing required parameter: 'input'.", 'input');
  const tools = responsesToolUse(request, model.toolFormat);
  const input: Conversation['input'] = { kind: 'chat', messages, ...(tools.promptTools.length > 0 ? { tools: tools.promptTools } : {}) };
  return { previous, history, input, tools };
}

/**
 * The chain's agent; a stored first turn names its chain by its own id unless a header names the
 * agent. A header's id is checked even where the chain's agent wins: it is never let through unchecked.
 */
function agentOf(context: RequestContext, request: ResponseCreateRequest, conversation: Conversation, id: string): { agentId: string; derived: boolean } {
  const headers = context.exchange.headers;
  const named = headers.has('x-agent-id') || headers.has('x-session-id') ? resolveAgent({ headers, messages: [] }) : undefined;
  if (conversation.previous !== undefined) return { agentId: conversation.previous.agentId, derived: false };
  if (request.store !== false) return named ?? { agentId: id, derived: false };
  return resolveAgent({ headers, bodyField: { value: request.user ?? undefined, param: 'user', opaque: true }, messages: conversation.input.messages });
}

/** As on chat completions: a grammar shapes the whole output, so a forced call or JSON answer is written with thinking off. */
function reasoningOf(request: ConversationRequest, tools: ToolUse): ReasoningRequest | undefined {
  return tools.grammar === undefined ? reasoningForEffort(request.reasoning?.effort) : { enabled: false };
}

function generateMessage(request: ResponseCreateRequest, requestId: string, agentId: string, conversation: Conversation): GenerateMessage {
  const sampling = { ...defaultSampling, temperature: request.temperature ?? defaultSampling.temperature, topP: request.top_p ?? defaultSampling.topP };
  const message: GenerateMessage = { type: 'generate', requestId, agentId, input: conversation.input, sampling, stop: [] };
  if (conversation.tools.grammar !== undefined) message.sampling.grammar = conversation.tools.grammar;
  const reasoning = reasoningOf(request, conversation.tools);
  if (reasoning !== undefined) message.reasoning = reasoning;
  if (request.max_output_tokens !== null && request.max_output_tokens !== undefined) message.maxTokens = request.max_output_tokens;
  return message;
}

/** Reasoning first, then the answer, read for calls when tools may be called (calls come from the answer only). */
function outputReader(request: ResponseCreateRequest, message: GenerateMessage, model: ModelSummary, tools: ToolUse): OutputReader {
  const calls = tools.parseFormat === undefined ? undefined : new ToolCallStream(tools.parseFormat);
  const answer = calls === undefined ? textOutput() : request.parallel_tool_calls === false ? firstCallOnly(calls) : calls;
  const start = reasoningStartFor(model.reasoning, message.reasoning);
  return start === 'answer' ? answer : afterReasoning(new ReasoningStream(start), answer);
}

/** What the response echoes of its request, as OpenAI fills in the defaults. */
function settingsOf(request: ResponseCreateRequest, id: string, model: ModelSummary): ResponseSettings {
  return {
    id,
    created_at: Math.floor(Date.now() / 1000),
    model: model.id,
    instructions: request.instructions ?? null,
    max_output_tokens: request.max_output_tokens ?? null,
    metadata: request.metadata ?? {},
    parallel_tool_calls: request.parallel_tool_calls ?? true,
    previous_response_id: request.previous_response_id ?? null,
    store: request.store !== false,
    temperature: request.temperature ?? defaultSampling.temperature,
    top_p: request.top_p ?? defaultSampling.topP,
    text: { format: request.text?.format ?? { type: 'text' } },
    tool_choice: request.tool_choice ?? (request.tools === null || request.tools === undefined || request.tools.length === 0 ? 'none' : 'auto'),
    tools: (request.tools ?? []).map((tool) => ({ ...tool, strict: tool.strict ?? true })),
    truncation: request.truncation ?? 'disabled',
    user: request.user ?? null,
    reasoning: { effort: request.reasoning?.effort ?? null, summary: request.reasoning?.summary ?? request.reasoning?.generate_summary ?? null },
  };
}

async function create(context: RequestContext, engine: ResponsesEngine, agentGate: AgentGate, store: ResponseStore): Promise<void> {
  const request = parseResponsesBody(responseCreateSchema, await context.readJson());
  const model = modelOf(engine, request.model);
  const conversation = await conversationOf(request, store, model);
  const id = newId('resp');
  const { agentId, derived } = agentOf(context, request, conversation, id);
  const shareScope = agentGate(agentId, context.exchange.headers);
  const message = generateMessage(request, context.requestId, agentId, conversation);
  const run = {
    settings: settingsOf(request, id, model),
    output: outputReader(request, message, model, conversation.tools),
    carryReasoning: request.include?.includes('reasoning.encrypted_content') === true,
    finished: (response: ResponseObject) => {
      if (request.store !== false) store.put({ response, agentId, history: [...conversation.history, assistantTurn(response.output)] });
    },
  };
  const sink = request.stream === true ? responseStreamSink(run) : responseJsonSink(run);
  runGeneration(context, engine, agentTerms(message, shareScope, derived), sink);
}

function notFound(id: string): SemanticError {
  return new SemanticError(ErrorCode.ResponseNotFound, `Response with id '${id}' not found.`, { param: 'response_id' });
}

/** The `{id}` path segment; an id that could never have been stored is simply not found. */
function responseIdParam(context: RequestContext): string {
  const raw = context.params.id ?? '';
  if (!ResponseStore.isStorableId(raw)) throw notFound(raw.slice(0, 100));
  return raw;
}

async function retrieve(context: RequestContext, store: ResponseStore): Promise<void> {
  const id = responseIdParam(context);
  if (['true', '1'].includes(new URLSearchParams(context.exchange.query).get('stream') ?? '')) {
    throw new BadRequestError('Replaying a stored response as a stream is not supported by this server.', 'stream');
  }
  const record = await store.get(id);
  if (record === undefined) throw notFound(id);
  context.sendJson(200, record.response);
}

/** The chain's last stored response takes the agent's cache with it; a cache already gone is fine. */
async function remove(context: RequestContext, engine: ResponsesEngine, store: ResponseStore): Promise<void> {
  const id = responseIdParam(context);
  const deleted = await store.delete(id);
  if (deleted === undefined) throw notFound(id);
  if (!deleted.agentStillStored) await forgetAgent(context, engine, deleted.record.agentId);
  context.sendJson(200, { id, object: 'response', deleted: true });
}

/** A turn of the agent running now (409) keeps its cache, which the budgets will evict in time. */
async function forgetAgent(context: RequestContext, engine: ResponsesEngine, agentId: string): Promise<void> {
  try {
    await engine.agents({ op: 'delete', agentId, evictOnly: false });
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    if (code !== ErrorCode.NotFound && code !== ErrorCode.Conflict) throw error;
    if (code === ErrorCode.Conflict) context.log.info({ agentId }, 'deleted response: its agent has a turn running, cache kept');
  }
}

async function countInputTokens(context: RequestContext, engine: ResponsesEngine, store: ResponseStore): Promise<void> {
  const request = parseResponsesBody(inputTokensSchema, await context.readJson());
  const conversation = await conversationOf(request, store, modelOf(engine, request.model));
  const tokens = await engine.countTokens(conversation.input, reasoningOf(request, conversation.tools));
  context.sendJson(200, { object: 'response.input_tokens', input_tokens: tokens });
}

export function responsesRoutes(engine: ResponsesEngine, store: ResponseStore, agentGate: AgentGate = noAgentLimit): Route[] {
  const route = (method: Route['method'], path: string, handle: (context: RequestContext) => Promise<void>): Route => ({ method, path, errorShape: openAIErrorBody, handle });
  return [
    route('POST', '/v1/responses/input_tokens', (context) => countInputTokens(context, engine, store)),
    route('POST', '/v1/responses', (context) => create(context, engine, agentGate, store)),
    route('GET', '/v1/responses/:id', (context) => retrieve(context, store)),
    route('DELETE', '/v1/responses/:id', (context) => remove(context, engine, store)),
  ];
}
