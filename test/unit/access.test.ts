// Who may call which route, as pure logic: keys, the admin key, and a server with no key at all,
// whose admin routes are open only when it listens on loopback.
import t from 'tap';
import { AccessControl, isLoopbackHost } from '../../worker/http/access.js';

const headers = (key?: string): Map<string, string> => new Map(key === undefined ? [] : [['authorization', `Bearer ${key}`]]);
const outcome = (control: AccessControl, access: 'public' | 'user' | 'admin', key?: string): string => {
  try {
    return control.check(headers(key), access).admin ? 'admin' : 'user';
  } catch (error) {
    return (error as { code: string }).code;
  }
};

t.test('no key at all: open on loopback, admin routes 403 beyond it', async (t) => {
  const local = new AccessControl([], undefined, true);
  t.equal(outcome(local, 'user'), 'admin');
  t.equal(outcome(local, 'admin'), 'admin');
  const exposed = new AccessControl([], undefined, false);
  t.equal(outcome(exposed, 'user'), 'admin', 'user routes stay open, as llama-server without --api-key');
  t.equal(outcome(exposed, 'admin'), 'ERR_FORBIDDEN');
  t.equal(outcome(exposed, 'public'), 'user');
});

t.test('keys set: 401 without or with a wrong key, 403 for a user key on an admin route', async (t) => {
  const control = new AccessControl(['user-key-1'], 'admin-key-1', false);
  t.equal(outcome(control, 'user'), 'ERR_UNAUTHORIZED');
  t.equal(outcome(control, 'user', 'nope'), 'ERR_UNAUTHORIZED');
  t.equal(outcome(control, 'user', 'user-key-1'), 'user');
  t.equal(outcome(control, 'admin', 'user-key-1'), 'ERR_FORBIDDEN');
  t.equal(outcome(control, 'admin', 'admin-key-1'), 'admin');
});

t.test('loopback hosts', async (t) => {
  t.same(['127.0.0.1', '::1', 'localhost', '0.0.0.0', '10.0.0.5'].map(isLoopbackHost), [true, true, true, false, false]);
});

t.test('keys are compared in constant time: equal-length digests, every key, whichever matches', async (t) => {
  const crypto = await import('node:crypto');
  const compared: [number, number][] = [];
  const { AccessControl: Spied } = await t.mockImport<typeof import('../../worker/http/access.js')>('../../worker/http/access.js', {
    'node:crypto': {
      ...crypto,
      timingSafeEqual: (a: NodeJS.ArrayBufferView, b: NodeJS.ArrayBufferView) => {
        compared.push([a.byteLength, b.byteLength]);
        return crypto.timingSafeEqual(a, b);
      },
    },
  });
  const control = new Spied(['first-key-1', 'second-key-2', 'third-key-33'], 'admin-key-1', false);
  const comparisons = (key: string | undefined, access: 'user' | 'admin' = 'user'): { outcome: string; lengths: number[] } => {
    compared.length = 0;
    return { outcome: outcome(control, access, key), lengths: compared.flat() };
  };
  const allDigests = Array<number>(8).fill(32); // the admin key, then each of the 3 user keys: 2 digests each
  t.same(comparisons('first-key-1'), { outcome: 'user', lengths: allDigests }, 'a match on the first key still compares the other two');
  t.same(comparisons('third-key-33'), { outcome: 'user', lengths: allDigests }, 'a match on the last key: the same comparisons');
  t.same(comparisons('x'), { outcome: 'ERR_UNAUTHORIZED', lengths: allDigests }, 'a 1-character key: digests of 32 bytes, no length check');
  t.same(comparisons('k'.repeat(10_000)), { outcome: 'ERR_UNAUTHORIZED', lengths: allDigests }, 'a 10,000-character key: the same');
  t.same(comparisons('first-key-'), { outcome: 'ERR_UNAUTHORIZED', lengths: allDigests }, 'a prefix of a key is refused');
  t.same(comparisons('admin-key-1', 'admin'), { outcome: 'admin', lengths: [32, 32] }, 'the admin key: one comparison, then done (the caller is the admin)');
  t.same(comparisons(undefined), { outcome: 'ERR_UNAUTHORIZED', lengths: [] }, 'no key: nothing to compare');
});
