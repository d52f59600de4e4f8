// The request line's traceId comes from the client's W3C traceparent (version-traceid-parentid-flags):
// anything malformed, or the all-zero trace id the spec calls invalid, gives none rather than a wrong one.
import t from 'tap';
import { traceIdOf } from '../../worker/http/router.js';

t.test('traceIdOf reads the trace id of a valid traceparent only', async (t) => {
  const id = '4bf92f3577b34da6a3ce929d0e0e4736';
  t.equal(traceIdOf(`00-${id}-00f067aa0ba902b7-01`), id);
  t.equal(traceIdOf(` 00-${id}-00f067aa0ba902b7-00 `), id, 'surrounding spaces');
  t.equal(traceIdOf(undefined), undefined);
  t.equal(traceIdOf(`00-${'0'.repeat(32)}-00f067aa0ba902b7-01`), undefined, 'all zeros is invalid');
  t.equal(traceIdOf(`00-${id.toUpperCase()}-00f067aa0ba902b7-01`), undefined, 'uppercase hex is not W3C');
  t.equal(traceIdOf(`00-${id}-00f067aa0ba902b7`), undefined, 'no flags');
  t.equal(traceIdOf(`00-${id}x-00f067aa0ba902b7-01`), undefined);
});
