// The cache file codec: a round trip gives views on the file's bytes, and every kind of bad file is
// recognised with its reason before any byte would reach llama.cpp.
import t from 'tap';
import { CacheFileError, decodeCacheFile, encodeCacheFile } from '../../worker/persistence/cache-file.js';

const meta = { agentId: 'agent:one', model: 'm'.repeat(32), kvType: 'f16', vTransposed: false };
const contents = {
  ...meta,
  tokens: Int32Array.of(151644, 872, 198, 9707),
  logits: Float32Array.of(-1.5, 0, 2.25),
  state: Uint8Array.from({ length: 1000 }, (_, i) => (i * 7) % 256),
};
const file = (): Buffer => Buffer.concat(encodeCacheFile(contents));

function reason(bytes: Buffer, expected = meta): string | undefined {
  try {
    decodeCacheFile(bytes, expected);
    return undefined;
  } catch (error) {
    return error instanceof CacheFileError ? error.reason : 'other';
  }
}

t.test('round trip: same tokens, logits and state, the state a view on the file', async (t) => {
  const bytes = file();
  const decoded = decodeCacheFile(bytes, meta);
  t.same([...decoded.tokens], [...contents.tokens]);
  t.same([...decoded.logits], [...contents.logits]);
  t.same(Buffer.from(decoded.state), Buffer.from(contents.state));
  t.equal(decoded.state.buffer, bytes.buffer, 'the state is not copied');
  const header = JSON.parse(bytes.toString('utf8', 8, 8 + Number(bytes.readBigUInt64LE(0)))) as { __metadata__: Record<string, string> };
  t.equal(header.__metadata__.format, 'semantic-kv-cache/4');
  t.match(header.__metadata__.crc32, /^[0-9a-f]{8}$/);
});

t.test('a file on a shared segment names it; a malformed reference makes the file corrupt', async (t) => {
  const withPrefix = Buffer.concat(encodeCacheFile({ ...contents, prefix: { segment: 'abc123-64', tokens: 2 } }));
  t.same(decodeCacheFile(withPrefix, meta).prefix, { segment: 'abc123-64', tokens: 2 });
  const bad = (prefix: { segment: string; tokens: number }): string | undefined => reason(Buffer.concat(encodeCacheFile({ ...contents, prefix })));
  t.equal(bad({ segment: '../../etc/x-1', tokens: 2 }), 'corrupt', 'a segment name that could leave the dir');
  t.equal(bad({ segment: 'abc-64', tokens: contents.tokens.length }), 'corrupt', 'a prefix that leaves no cells of its own');
  t.equal(bad({ segment: 'abc-64', tokens: 0 }), 'corrupt', 'an empty prefix');
});

t.test('bad files are recognised, each with its reason', async (t) => {
  t.equal(reason(file().subarray(0, 5)), 'truncated', 'shorter than the length prefix');
  t.equal(reason(file().subarray(0, file().length - 1)), 'truncated', 'one byte short');
  const flipped = file();
  flipped[flipped.length - 10] = (flipped[flipped.length - 10] ?? 0) ^ 0x01;
  t.equal(reason(flipped), 'corrupt', 'one bit flipped in the state');
  const flippedLogit = file();
  const logitAt = flippedLogit.length - contents.state.length - 4;
  flippedLogit[logitAt] = (flippedLogit[logitAt] ?? 0) ^ 0x01;
  t.equal(reason(flippedLogit), 'corrupt', 'one bit flipped in the logits');
  t.equal(reason(Buffer.concat([file(), Buffer.of(0)])), 'corrupt', 'trailing bytes');
  t.equal(reason(file(), { ...meta, model: 'x'.repeat(32) }), 'foreign', 'another model');
  t.equal(reason(file(), { ...meta, kvType: 'q8_0' }), 'foreign', 'another KV type');
  t.equal(reason(file(), { ...meta, vTransposed: true }), 'foreign', 'another V layout (flash attention on or off)');
  t.equal(reason(file(), { ...meta, agentId: 'agent:two' }), 'foreign', 'another agent');
  const v2 = Buffer.from(file().toString('latin1').replace('semantic-kv-cache/4', 'semantic-kv-cache/2'), 'latin1');
  t.equal(reason(v2), 'foreign', 'a format version older than 3');
  const v3 = Buffer.from(file().toString('latin1').replace('semantic-kv-cache/4', 'semantic-kv-cache/3'), 'latin1');
  t.equal(reason(v3), undefined, 'version 3 (no shared prefix) is still read');
  const notJson = file();
  notJson.write('{{{{', 8);
  t.equal(reason(notJson), 'corrupt', 'a header that is not JSON');
});
