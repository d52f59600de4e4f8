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

t.test("the fleet scrape's messages: a metrics report keeps NaN (null in JSON) and refuses a malformed family", async (t) => {
  const family = { name: 'semantic_request_total', help: 'h', type: 'counter', aggregator: 'sum', values: [{ value: null, labels: { route: '/x', status: 200 } }] };
  // Node's IPC serialises as JSON: NaN arrives as null and is read back as NaN.
  const report = parseWorkerMessage(JSON.parse(JSON.stringify([IPC_VERSION, { type: 'metrics_report', id: 3, metrics: [family] }])));
  t.ok(!isInvalid(report) && report.type === 'metrics_report' && Number.isNaN(report.metrics[0]?.values[0]?.value));
  t.ok(
    isInvalid(parseWorkerMessage([IPC_VERSION, { type: 'metrics_report', id: 3, metrics: [{ ...family, values: [{ value: 'x', labels: {} }] }] }])),
    'a value that is no number',
  );
  t.ok(isInvalid(parseWorkerMessage([IPC_VERSION, { type: 'metrics_request', id: -1 }])), 'a negative id');
  t.same(parseSupervisorMessage([IPC_VERSION, { type: 'collect_metrics', id: 0 }]), { type: 'collect_metrics', id: 0 });
  t.same(parseSupervisorMessage([IPC_VERSION, { type: 'metrics_answer', id: 1, text: 'a 1\n', contentType: 'text/plain' }]), {
    type: 'metrics_answer',
    id: 1,
    text: 'a 1\n',
    contentType: 'text/plain',
  });
});
