// TextStream emits whole UTF-8 characters only and withholds a possible stop string until ruled out.
import t from 'tap';
import { TextStream } from '../../worker/engine/text-stream.js';

const bytes = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'utf8'));

t.test('multi-byte characters split across tokens are emitted whole', async (t) => {
  const stream = new TextStream([]);
  const llama = bytes('🦙');
  t.equal(stream.push(llama.subarray(0, 1)), '');
  t.equal(stream.push(llama.subarray(1, 3)), '');
  t.equal(stream.push(llama.subarray(3)), '🦙');
  t.equal(stream.flush(), '');
});

t.test('a stop string spread over tokens is withheld, then cut', async (t) => {
  const stream = new TextStream(['STOP']);
  t.equal(stream.push(bytes('abc S')), 'abc ');
  t.equal(stream.push(bytes('TO')), '');
  t.equal(stream.push(bytes('Pxyz')), '');
  t.equal(stream.hitStop, true);
  t.equal(stream.push(bytes('more')), '', 'nothing after a stop');
  t.equal(stream.flush(), '');
});

t.test('a false start of a stop string is released', async (t) => {
  const stream = new TextStream(['\n\n', 'END']);
  t.equal(stream.push(bytes('line\n')), 'line');
  t.equal(stream.push(bytes('next E')), '\nnext ');
  t.equal(stream.push(bytes('Nx')), 'ENx');
  t.equal(stream.push(bytes('E')), '');
  t.equal(stream.flush(), 'E', 'an unfinished stop string at the end is plain text');
  t.equal(stream.hitStop, false);
});

t.test('the earliest of several stop strings wins', async (t) => {
  const stream = new TextStream(['world', 'lo']);
  t.equal(stream.push(bytes('hello world')), 'hel');
  t.equal(stream.hitStop, true);
});

t.test('the stop string that matched is told; the earliest in the text wins, whatever the list order', async (t) => {
  const stream = new TextStream(['END', 'b']);
  t.equal(stream.matchedStop, undefined);
  t.equal(stream.push(bytes('a')), 'a');
  t.equal(stream.push(bytes('bcEND')), '');
  t.equal(stream.matchedStop, 'b');
  const late = new TextStream(['END', 'b']);
  t.equal(late.push(bytes('xEN')), 'x');
  t.equal(late.push(bytes('Db')), '');
  t.equal(late.matchedStop, 'END');
  const none = new TextStream(['END']);
  t.equal(none.push(bytes('EN')), '');
  t.equal(none.flush(), 'EN', 'an unfinished stop string is text');
  t.equal(none.matchedStop, undefined);
});
