// The supervisor↔worker contract (shared/protocol/ipc.ts): every message travels as
// [IPC_VERSION, message] and is checked where it arrives, version first, with the same error payload
// schema as the thread protocol, so a foreign or malformed message is a reason to log, never a state.
import t from 'tap';
import { IPC_VERSION, isInvalid, parseSupervisorMessage, parseWorkerMessage } from '../../shared/protocol/ipc.js';

t.test('a message in its versioned envelope is parsed', async (t) => {
  t.same(parseWorkerMessage([IPC_VERSION, { type: 'ready', port: 8080, model: 'tiny' }]), { type: 'ready', port: 8080, model: 'tiny' });
  t.same(parseSupervisorMessage([IPC_VERSION, { type: 'drain', mode: 'handover' }]), { type: 'drain', mode: 'handover' });
});

t.test('another version, a bare message or a malformed one is invalid, with the reason', async (t) => {
  const older = parseWorkerMessage([IPC_VERSION - 1, { type: 'starting' }]);
  t.ok(isInvalid(older) && older.invalid.includes(`IPC version ${IPC_VERSION - 1} is not the supported version ${IPC_VERSION}`));
  const bare = parseSupervisorMessage({ type: 'drain', mode: 'shutdown' });
  t.ok(isInvalid(bare) && bare.invalid.includes('envelope'), 'an unversioned message (an older supervisor) is refused');
  t.ok(isInvalid(parseSupervisorMessage([IPC_VERSION, { type: 'drain', mode: 'later' }])), 'an unknown drain mode');
  t.ok(isInvalid(parseWorkerMessage([IPC_VERSION, { type: 'ready', port: 0, model: 'tiny' }])), 'port 0 is no port');
});

t.test("engine_dead carries the thread protocol's error payload: a known code, a non-negative retryAfter", async (t) => {
  const dead = (error: object): unknown => parseWorkerMessage([IPC_VERSION, { type: 'engine_dead', error }]);
  t.same(dead({ code: 'ERR_ENGINE_DEAD', message: 'decode failed' }), { type: 'engine_dead', error: { code: 'ERR_ENGINE_DEAD', message: 'decode failed' } });
  t.ok(isInvalid(dead({ code: 'ERR_NOT_A_CODE', message: 'x' }) as object), 'an unknown code');
  t.ok(isInvalid(dead({ code: 'ERR_ENGINE_DEAD', message: 'x', retryAfter: -1 }) as object), 'a negative retryAfter (the old copy of the schema let it through)');
});
