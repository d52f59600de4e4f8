// Token buckets with a fake clock: exact tokens, Retry-After seconds, refill, and pruning.
import t from 'tap';
import { RateLimiter } from '../../worker/http/rate-limit.js';

t.test('a burst, then the per-minute rate; Retry-After says when the next token comes', async (t) => {
  let now = 0;
  const limiter = new RateLimiter(60, 3, () => now); // one token a second, three at most
  t.same([limiter.take('k'), limiter.take('k'), limiter.take('k')], [0, 0, 0], 'the burst');
  t.equal(limiter.take('k'), 1, 'then one second to wait');
  t.equal(limiter.take('other'), 0, 'callers have their own buckets');
  now = 500;
  t.equal(limiter.take('k'), 1, 'half a token is not a token: 0.5 s left, rounded up');
  now = 1000;
  t.equal(limiter.take('k'), 0, 'a token a second');
  t.equal(limiter.take('k'), 1);
  now = 60_000;
  t.same(
    [0, 0, 0, 1].map(() => limiter.take('k')),
    [0, 0, 0, 1],
    'refilled to the burst, not beyond',
  );
  t.throws(() => limiter.check('k', 'API key'), { code: 'ERR_RATE_LIMITED', retryAfter: 1, message: 'Rate limit reached for this API key: retry in 1 s.' });
});

t.test('0 per minute is off; full buckets are pruned', async (t) => {
  t.equal(new RateLimiter(0, 1).take('k'), 0);
  let now = 0;
  const limiter = new RateLimiter(600, 2, () => now);
  for (let i = 0; i < 1023; i++) limiter.take(`caller-${i}`);
  t.equal(limiter.size, 1023);
  now = 10_000; // every bucket is full again
  limiter.take('trigger'); // the 1024th take prunes
  t.equal(limiter.size, 1, 'only the caller just seen');
});
