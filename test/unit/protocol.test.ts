// Every protocol message survives a msgpack round trip; unknown, malformed and foreign frames are
// rejected with a ProtocolError that says what is wrong.
import t from 'tap';
import { Packr } from 'msgpackr';
import { decodeFrontMessage, decodeInferenceMessage, encodeMessage } from '../../shared/protocol/codec.js';
import { PROTOCOL_VERSION, type FrontToInference, type InferenceToFront } from '../../shared/protocol/messages.js';

const sampling = { temperature: 0, topP: 1, topK: 0, minP: 0, seed: 7, repeatPenalty: 1, frequencyPenalty: 0, presencePenalty: 0 };
const front: FrontToInference[] = [
  {
    type: 'generate',
    requestId: 'r1',
    agentId: 'agent-7',
    input: {
      kind: 'chat',
      messages: [
        { role: 'system', content: 'be brief' },
        { role: 'user', content: 'héllo 🦙' },
      ],
    },
    sampling,
    maxTokens: 16,
    stop: ['\n\n'],
  },
  { type: 'generate', requestId: 'r2', agentId: 'conv-0123456789abcdef', input: { kind: 'text', prompt: 'Once upon' }, sampling, stop: [] },
  {
    type: 'generate',
    requestId: 'r4',
    agentId: 'bob',
    input: { kind: 'text', prompt: 'traced' },
    sampling,
    stop: [],
    trace: { traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' },
  },
  { type: 'abort', requestId: 'r1' },
  { type: 'stats_request', requestId: 's1' },
  { type: 'count_tokens', requestId: '#count-1', input: { kind: 'chat', messages: [{ role: 'user', content: 'hi' }] } },
  { type: 'agents_request', requestId: '#agents-1', op: 'list' },
  { type: 'agents_request', requestId: '#agents-2', op: 'delete', agentId: 'alice', evictOnly: true },
  { type: 'drain' },
  { type: 'cut' },
];
const inference: InferenceToFront[] = [
  {
    type: 'ready',
    model: {
      id: 'tiny',
      path: '/m.gguf',
      architecture: 'qwen2',
      contextLength: 8192,
      vocabSize: 151936,
      engineContext: 4096,
      maxSequences: 8,
      toolFormat: 'hermes',
      reasoning: null,
    },
  },
  { type: 'started', requestId: 'r1', promptTokens: 12, cachedTokens: 8, cacheTier: 'hot' },
  { type: 'tokens', requestId: 'r1', text: 'wörld', tokenCount: 1 },
  { type: 'done', requestId: 'r1', finishReason: 'length', usage: { promptTokens: 12, completionTokens: 16, cachedTokens: 0 } },
  { type: 'done', requestId: 'r3', finishReason: 'stop', usage: { promptTokens: 12, completionTokens: 3, cachedTokens: 0 }, stopSequence: '\n\nHuman:' },
  { type: 'failed', requestId: 'r2', error: { code: 'ERR_QUEUE_FULL', message: 'full', retryAfter: 1 } },
  {
    type: 'stats',
    requestId: 's1',
    stats: {
      activeSequences: 1,
      idleSequences: 2,
      freeSequences: 5,
      queuedRequests: 0,
      usedCells: 20,
      totalCells: 4096,
      blockSize: 16,
      usedBlocks: 3,
      idleBlocks: 1,
      totalBlocks: 256,
      ramAgents: 1,
      ramBytes: 4096,
      steps: 3,
      sampledTokens: 40,
      multiSequenceSteps: 1,
      timings: { boundaryMs: 1.5, decodeCallMs: 30, acceptMs: 0.5, native: { decodes: 3, tokens: 40, queuedMs: 0.1, decodeMs: 28, sampleMs: 1, settleMs: 0.2 } },
    },
  },
  { type: 'token_count', requestId: '#count-1', inputTokens: 9 },
  {
    type: 'agents_result',
    requestId: '#agents-1',
    outcome: {
      kind: 'list',
      agents: [
        { id: 'a', tier: 'hot', tokens: 30, bytes: 4096, lastUsed: 1_700_000_000_000 },
        { id: 'b', tier: 'disk', tokens: null, bytes: 900, lastUsed: 1 },
      ],
    },
  },
  { type: 'agents_result', requestId: '#agents-2', outcome: { kind: 'deleted', id: 'alice', tiers: ['hot', 'disk'] } },
  {
    type: 'agents_result',
    requestId: '#agents-3',
    outcome: {
      kind: 'stats',
      totals: {
        active: { agents: 0, tokens: 0, bytes: 0 },
        hot: { agents: 1, tokens: 30, bytes: 4096 },
        ram: { agents: 0, tokens: 0, bytes: 0 },
        disk: { agents: 1, tokens: 0, bytes: 900 },
        ramBudgetBytes: 1024,
        diskBudgetBytes: 2048,
      },
    },
  },
  { type: 'drained', persisted: 3, cut: 1 },
  {
    type: 'spans',
    spans: [
      {
        name: 'restore',
        parent: { traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01', tracestate: 'k=v' },
        startMs: 1796653432554.25,
        endMs: 1796653432561.5,
        attributes: { 'semantic.cache.tier': 'disk', 'semantic.cache.restored': true, 'gen_ai.usage.output_tokens': 4, 'gen_ai.response.finish_reasons': ['stop'] },
      },
    ],
  },
  { type: 'engine_dead', error: { code: 'ERR_ENGINE_DEAD', message: 'decode failed' } },
];

t.test('every message type survives a round trip', async (t) => {
  for (const message of front) t.same(decodeFrontMessage(encodeMessage(message)), message, message.type);
  for (const message of inference) t.same(decodeInferenceMessage(encodeMessage(message)), message, message.type);
});

t.test('encoded frames are independent copies', async (t) => {
  const a = encodeMessage({ type: 'abort', requestId: 'aaaa' });
  encodeMessage({ type: 'abort', requestId: 'bbbb' });
  t.same(decodeFrontMessage(a), { type: 'abort', requestId: 'aaaa' });
});

t.test('bad frames are rejected with a clear error', async (t) => {
  const raw = new Packr({ useRecords: false });
  const cases: [string, Uint8Array, RegExp][] = [
    ['truncated msgpack', Uint8Array.of(0x92, 0x01), /undecodable frame/],
    ['not an envelope', raw.pack({ type: 'abort' }), /not \[version, message\]/],
    ['other version', raw.pack([PROTOCOL_VERSION + 1, { type: 'abort', requestId: 'x' }]), new RegExp(`protocol version ${PROTOCOL_VERSION + 1} `)],
    ['unknown type', raw.pack([PROTOCOL_VERSION, { type: 'explode', requestId: 'x' }]), /invalid message: type/],
    ['missing field', raw.pack([PROTOCOL_VERSION, { type: 'abort' }]), /invalid message: requestId/],
    ['wrong type', raw.pack([PROTOCOL_VERSION, { ...front[0], maxTokens: 'many' }]), /invalid message: maxTokens/],
    ['out of range', raw.pack([PROTOCOL_VERSION, { ...front[0], sampling: { ...sampling, topP: 3 } }]), /invalid message: sampling\.topP/],
    ['inference message on the front decoder', encodeMessage(inference[1] as InferenceToFront), /invalid message: type/],
  ];
  for (const [name, frame, message] of cases) {
    t.throws(() => decodeFrontMessage(frame), { code: 'ERR_PROTOCOL', message }, name);
  }
  t.throws(() => decodeInferenceMessage(encodeMessage({ type: 'abort', requestId: 'x' })), { code: 'ERR_PROTOCOL' });
});
