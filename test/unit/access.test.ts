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
