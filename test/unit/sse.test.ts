// SSE framing and OpenAI chunk bodies as exact strings, and the stream's backpressure rules against a
// fake socket: events wait while the socket is backpressured, go out in order when it drains, and a
// client that falls further behind than the bound is dropped.
import t from 'tap';
import { completionBody, completionChunk, openAIErrorBody, usageChunk, type CompletionMeta } from '../../worker/api/openai/bodies.js';
import { formatSseEvent, SseStream, type StreamTarget } from '../../worker/http/sse.js';

const meta: CompletionMeta = { id: 'chatcmpl-abc', created: 1700000000, model: 'tiny' };
const usage = { promptTokens: 12, completionTokens: 3, cachedTokens: 4 };
const sse = (value: unknown): string => formatSseEvent(JSON.stringify(value));

t.test('events: data lines, optional event name, blank line', async (t) => {
  t.equal(formatSseEvent('[DONE]'), 'data: [DONE]\n\n');
  t.equal(formatSseEvent('{"a":1}', 'message_start'), 'event: message_start\ndata: {"a":1}\n\n');
  t.equal(formatSseEvent('one\ntwo\r\nthree'), 'data: one\ndata: two\ndata: three\n\n');
});

t.test('OpenAI chunks, exactly', async (t) => {
  t.equal(
    sse(completionChunk(meta, { role: 'assistant', content: '' })),
    'data: {"id":"chatcmpl-abc","object":"chat.completion.chunk","created":1700000000,"model":"tiny","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}\n\n',
  );
  t.equal(
    sse(completionChunk(meta, { content: 'Hel\nlo "x"' })),
    'data: {"id":"chatcmpl-abc","object":"chat.completion.chunk","created":1700000000,"model":"tiny","choices":[{"index":0,"delta":{"content":"Hel\\nlo \\"x\\""},"logprobs":null,"finish_reason":null}]}\n\n',
  );
  t.equal(
    sse(completionChunk(meta, {}, 'length')),
    'data: {"id":"chatcmpl-abc","object":"chat.completion.chunk","created":1700000000,"model":"tiny","choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"length"}]}\n\n',
  );
  t.equal(
    sse(usageChunk(meta, usage)),
    'data: {"id":"chatcmpl-abc","object":"chat.completion.chunk","created":1700000000,"model":"tiny","choices":[],"usage":{"prompt_tokens":12,"completion_tokens":3,"total_tokens":15,"prompt_tokens_details":{"cached_tokens":4}}}\n\n',
  );
  t.equal(
    sse(openAIErrorBody({ code: 'ERR_INTERNAL', message: 'decode failed' })),
    'data: {"error":{"message":"decode failed","type":"server_error","param":null,"code":"ERR_INTERNAL"}}\n\n',
  );
});

t.test('a non-streamed completion body', async (t) => {
  t.equal(
    JSON.stringify(completionBody(meta, 'Hi!', { type: 'done', requestId: 'r', finishReason: 'stop', usage })),
    '{"id":"chatcmpl-abc","object":"chat.completion","created":1700000000,"model":"tiny","choices":[{"index":0,"message":{"role":"assistant","content":"Hi!"},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":3,"total_tokens":15,"prompt_tokens_details":{"cached_tokens":4}}}',
  );
});

/** A socket whose writes report backpressure while `blocked` is set. */
class FakeTarget implements StreamTarget {
  aborted = false;
  finished = false;
  blocked = false;
  head: { status: number; headers: Record<string, string> } | undefined;
  written: string[] = [];
  ended = false;
  private writable: (() => void) | undefined;

  beginStream(status: number, headers: Record<string, string>): void {
    this.head = { status, headers };
  }
  write(chunk: string | Uint8Array): boolean {
    this.written.push(String(chunk));
    return !this.blocked;
  }
  onWritable(listener: () => void): void {
    this.writable = listener;
  }
  endStream(): void {
    this.ended = true;
    this.finished = true;
  }
  destroy(): void {
    this.aborted = true;
    this.finished = true;
  }
  drain(): void {
    this.blocked = false;
    this.writable?.();
  }
}

t.test('headers go out with the first event', async (t) => {
  const target = new FakeTarget();
  const stream = new SseStream(target, { headers: { 'X-Request-ID': 'r1' } });
  t.equal(stream.isOpen, false);
  stream.send('x');
  t.same(target.head, {
    status: 200,
    headers: { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache', Connection: 'keep-alive', 'X-Accel-Buffering': 'no', 'X-Request-ID': 'r1' },
  });
});

t.test('events wait while the socket is backpressured and go out in order when it drains', async (t) => {
  const target = new FakeTarget();
  const stream = new SseStream(target);
  target.blocked = true;
  stream.send('1');
  stream.send('2');
  stream.send('3');
  t.same(target.written, ['data: 1\n\n'], 'the socket took the first event; the rest wait');
  t.equal(stream.backlog, 18);
  stream.end();
  t.equal(target.ended, false, 'the end waits for the queue');
  target.drain();
  t.same(target.written, ['data: 1\n\n', 'data: 2\n\n', 'data: 3\n\n']);
  t.equal(stream.backlog, 0);
  t.equal(target.ended, true);
});

t.test('a client further behind than the bound is dropped', async (t) => {
  const target = new FakeTarget();
  const stream = new SseStream(target, { maxQueuedBytes: 20 });
  target.blocked = true;
  stream.send('first');
  stream.send('0123456789');
  t.equal(stream.clientGone, false);
  stream.send('0123456789');
  t.equal(stream.clientGone, true);
  stream.send('after');
  t.equal(target.written.length, 1, 'nothing is written after the drop');
});

t.test('comments keep a connection alive without being events', async (t) => {
  const target = new FakeTarget();
  new SseStream(target).comment('ping');
  t.same(target.written, [': ping\n\n']);
});
