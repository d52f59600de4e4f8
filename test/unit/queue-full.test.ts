// QueueFullLatch: after the engine refuses a request as queue-full, the front repeats that refusal
// until the engine ends some other request (room freed) or the limits change.
import t from 'tap';
import { QueueFullLatch } from '../../worker/queue-full.js';
import { ErrorCode } from '../../shared/errors.js';

const full = { type: 'failed' as const, requestId: 'r1', error: { code: ErrorCode.QueueFull, message: 'queue full', retryAfter: 1 } };
const usage = { promptTokens: 3, completionTokens: 1, cachedTokens: 0 };

t.test('latches on a queue-full refusal, with the engine’s own error', async (t) => {
  const latch = new QueueFullLatch();
  t.equal(latch.refusal, undefined);
  latch.ended(full, 3);
  t.same(latch.refusal, full.error);
  latch.ended({ ...full, requestId: 'r2' }, 3);
  t.same(latch.refusal, full.error, 'another refusal keeps it latched');
});

t.test('opens when a request ends otherwise, or when the limits change', async (t) => {
  const latch = new QueueFullLatch();
  latch.ended(full, 3);
  latch.ended({ type: 'done', requestId: 'r0', finishReason: 'stop', usage }, 2);
  t.equal(latch.refusal, undefined, 'a completed request freed room');
  latch.ended(full, 3);
  latch.ended({ type: 'failed', requestId: 'r3', error: { code: ErrorCode.BadRequest, message: 'bad' } }, 2);
  t.equal(latch.refusal, undefined, 'any other end opens it');
  latch.ended(full, 3);
  latch.open();
  t.equal(latch.refusal, undefined);
});

t.test('never latches with nothing else in flight: nothing would ever open it', async (t) => {
  const latch = new QueueFullLatch();
  latch.ended(full, 0);
  t.equal(latch.refusal, undefined);
});
