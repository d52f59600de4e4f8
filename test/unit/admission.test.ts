// Admission hands out sequence ids and KV-cell reservations, queues in FIFO order, bounds the queue.
import t from 'tap';
import { Admission } from '../../worker/engine/admission.js';

t.test('admits while ids and cells last, then queues, then refuses', async (t) => {
  const admission = new Admission<string>(2, 100, 1);
  t.same(admission.tryAdmit('a', 60), { seqId: 0, cells: 60 });
  t.equal(admission.tryAdmit('b', 50), null, 'not enough cells: queued');
  t.equal(admission.tryAdmit('c', 10), 'queue-full', 'queue bound reached');
  t.equal(admission.queued, 1);
  t.same(admission.release({ seqId: 0, cells: 60 }), [{ item: 'b', reservation: { seqId: 1, cells: 50 } }]);
  t.equal(admission.freeSequences, 1);
});

t.test('FIFO: a small request does not overtake a queued big one', async (t) => {
  const admission = new Admission<string>(4, 100, 8);
  admission.tryAdmit('a', 90);
  t.equal(admission.tryAdmit('big', 50), null);
  t.equal(admission.tryAdmit('small', 5), null, 'queued behind big although it would fit');
  const started = admission.release({ seqId: 0, cells: 90 });
  t.same(started.map((s) => [s.item, s.reservation.seqId]), [['big', 1], ['small', 2]]);
});

t.test('queued requests can be removed and drained', async (t) => {
  const admission = new Admission<string>(1, 10, 8);
  admission.tryAdmit('a', 10);
  admission.tryAdmit('b', 1);
  admission.tryAdmit('c', 1);
  t.equal(admission.removeQueued((x) => x === 'b'), 'b');
  t.equal(admission.removeQueued((x) => x === 'zz'), undefined);
  t.same(admission.takeAllQueued(), ['c']);
  t.equal(admission.queued, 0);
});

t.test('the queue is bounded by tokens too', async (t) => {
  const admission = new Admission<string>(1, 100, 10, 150);
  admission.tryAdmit('running', 100);
  t.equal(admission.tryAdmit('a', 100), null, 'queued: 100 waiting tokens');
  t.equal(admission.tryAdmit('b', 60), 'queue-full', '160 would exceed 150');
  t.equal(admission.tryAdmit('c', 50), null, '150 fits exactly');
});
