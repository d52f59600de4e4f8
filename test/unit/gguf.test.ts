// GGUF writer/reader round trip, exact f16 and Q8_0 bytes, and deterministic model generation.
import t from 'tap';
import { createHash } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { fromFloat16Bits, quantizeQ8_0, TensorType, toFloat16Bits, ValueType, type GgufValue } from '../../shared/gguf/format.js';
import { readGgufMetadata } from '../../shared/gguf/reader.js';
import { encodeTensor, writeGguf } from '../../shared/gguf/writer.js';
import { defaultModelPath, ensureModel, makeModel } from '../../shared/gguf/make-model.js';

t.test('f16 conversion is exact on known values', async (t) => {
  t.equal(toFloat16Bits(1), 0x3c00);
  t.equal(toFloat16Bits(-2), 0xc000);
  t.equal(toFloat16Bits(65504), 0x7bff);
  t.equal(toFloat16Bits(1e6), 0x7c00, 'overflow is infinity');
  t.equal(toFloat16Bits(2 ** -24), 0x0001, 'smallest subnormal');
  t.equal(toFloat16Bits(0), 0);
  t.equal(toFloat16Bits(1 + 2 ** -11), 0x3c00, 'a tie rounds to even');
  t.equal(fromFloat16Bits(0x3555), 0.333251953125);
});

t.test('Q8_0 quantizes a block exactly as ggml lays it out', async (t) => {
  const values = Float32Array.from({ length: 32 }, (_, i) => (i - 16) / 16);
  const out = Buffer.alloc(34);
  quantizeQ8_0(values, out);
  t.equal(out.readUInt16LE(0), toFloat16Bits(1 / 127), 'scale = amax / 127');
  t.equal(out.readInt8(2), -127, 'the largest magnitude maps to ±127');
  t.equal(out.readInt8(2 + 16), 0);
  t.equal(out.readInt8(2 + 24), 64, '0.5 / (1/127) = 63.5 rounds away from zero');
  t.equal(out.readInt8(2 + 8), -64, '-0.5 rounds away from zero too');
  const expected = Buffer.alloc(34);
  expected.writeUInt16LE(0x2008, 0); // f16 nearest to 1/127
  for (let i = 0; i < 32; i++) expected.writeInt8(Math.sign(i - 16) * Math.round((Math.abs(i - 16) * 127) / 16), 2 + i);
  t.same([...out], [...expected], 'every byte of the block');
});

t.test('Q8_0 of an all-zero block is a zero scale and zero quants', async (t) => {
  const out = Buffer.alloc(34, 0xff);
  quantizeQ8_0(new Float32Array(32), out);
  t.same([...out], new Array<number>(34).fill(0));
});

t.test('metadata of every value type survives a write/read round trip', async (t) => {
  const dir = t.testdir();
  const metadata = new Map<string, GgufValue>([
    ['a.u8', { type: ValueType.UINT8, value: 200 }],
    ['a.i8', { type: ValueType.INT8, value: -5 }],
    ['a.u16', { type: ValueType.UINT16, value: 60000 }],
    ['a.i16', { type: ValueType.INT16, value: -30000 }],
    ['a.u32', { type: ValueType.UINT32, value: 4000000000 }],
    ['a.i32', { type: ValueType.INT32, value: -2000000000 }],
    ['a.f32', { type: ValueType.FLOAT32, value: 0.5 }],
    ['a.f64', { type: ValueType.FLOAT64, value: 1e-300 }],
    ['a.bool', { type: ValueType.BOOL, value: true }],
    ['a.str', { type: ValueType.STRING, value: 'héllo 🦙' }],
    ['a.u64', { type: ValueType.UINT64, value: 2n ** 60n }],
    ['a.i64', { type: ValueType.INT64, value: -(2n ** 60n) }],
    ['a.strs', { type: ValueType.ARRAY, itemType: ValueType.STRING, value: ['x', '', 'zz'] }],
    ['a.ints', { type: ValueType.ARRAY, itemType: ValueType.INT32, value: [1, -2, 3] }],
    ['a.bytes', { type: ValueType.ARRAY, itemType: ValueType.UINT8, value: [0, 255] }],
    ['a.floats', { type: ValueType.ARRAY, itemType: ValueType.FLOAT32, value: [0.25, -1.5] }],
    ['a.bools', { type: ValueType.ARRAY, itemType: ValueType.BOOL, value: [true, false] }],
    ['a.u64s', { type: ValueType.ARRAY, itemType: ValueType.UINT64, value: [0n, 2n ** 63n] }],
  ]);
  const path = join(dir, 'm.gguf');
  await writeGguf(path, metadata, [{ name: 'w', shape: [32, 2], type: TensorType.F16, values: () => new Float32Array(64).fill(1) }]);
  t.same(await readGgufMetadata(path), metadata);
  const bytes = await readFile(path);
  t.equal(bytes.readUInt32LE(0), 0x46554747, 'GGUF magic');
  t.equal(bytes.length % 32, 0, 'data section is aligned');
  t.equal(bytes.readUInt16LE(bytes.length - 2), 0x3c00, 'the last f16 value is 1.0');
});

t.test('the tiny model is deterministic from its seed and carries the qwen2 tokenizer', async (t) => {
  const dir = t.testdir();
  const hash = async (seed: number, name: string): Promise<string> => {
    const path = join(dir, name);
    await makeModel({ shape: 'tiny', seed, outPath: path });
    return createHash('sha256')
      .update(await readFile(path))
      .digest('hex');
  };
  const first = await hash(1, 'a.gguf');
  t.equal(await hash(1, 'b.gguf'), first, 'same seed, same bytes');
  t.not(await hash(2, 'c.gguf'), first, 'another seed, other bytes');
  const metadata = await readGgufMetadata(join(dir, 'a.gguf'));
  t.same(metadata.get('general.architecture'), { type: ValueType.STRING, value: 'qwen2' });
  const tokens = metadata.get('tokenizer.ggml.tokens');
  t.ok(tokens?.type === ValueType.ARRAY && tokens.value.length >= 32000, 'vocabulary of at least 32k tokens');
  t.match(metadata.get('tokenizer.chat_template')?.value, /<\|im_start\|>/);
});

t.test('a tensor streamed in chunks has the same bytes as one written whole', async (t) => {
  const dir = t.testdir();
  const values = Float32Array.from({ length: 96 }, (_, i) => Math.sin(i));
  const whole = join(dir, 'whole.gguf');
  const chunked = join(dir, 'chunked.gguf');
  const meta = new Map<string, GgufValue>([['k', { type: ValueType.UINT32, value: 1 }]]);
  await writeGguf(whole, meta, [{ name: 'w', shape: [32, 3], type: TensorType.Q8_0, values: () => values }]);
  await writeGguf(chunked, meta, [{ name: 'w', shape: [32, 3], type: TensorType.Q8_0, values: () => [values.subarray(0, 32), values.subarray(32)] }]);
  const bytes = await readFile(chunked);
  t.same(bytes, await readFile(whole));
  t.same(bytes.subarray(bytes.length - 128, bytes.length - 128 + 102), encodeTensor(TensorType.Q8_0, values), 'the data is the last aligned block');
  await t.rejects(
    writeGguf(join(dir, 'bad.gguf'), meta, [{ name: 'w', shape: [32, 3], type: TensorType.Q8_0, values: () => values.subarray(0, 64) }]),
    /64 values/,
    'too few values is an error, not a corrupt file',
  );
});

t.test('ensureModel generates once into SEMANTIC_MODEL_CACHE and then reuses the file', async (t) => {
  const dir = t.testdir();
  const saved = process.env.SEMANTIC_MODEL_CACHE;
  process.env.SEMANTIC_MODEL_CACHE = join(dir, 'cache');
  t.teardown(() => {
    if (saved === undefined) delete process.env.SEMANTIC_MODEL_CACHE;
    else process.env.SEMANTIC_MODEL_CACHE = saved;
  });
  const path = defaultModelPath('tiny', 3);
  t.ok(path.startsWith(join(dir, 'cache')), 'the cache directory is honoured');
  t.match(path, /tiny.*3.*v\d+\.gguf$/, 'the name carries shape, seed and format version');
  const [first, second] = await Promise.all([ensureModel('tiny', 3), ensureModel('tiny', 3)]);
  t.equal(first, path);
  t.equal(second, path, 'racing callers get the same file');
  const before = (await stat(path)).mtimeMs;
  t.equal(await ensureModel('tiny', 3), path);
  t.equal((await stat(path)).mtimeMs, before, 'an existing model is not rewritten');
  t.equal((await readGgufMetadata(path)).get('qwen2.embedding_length')?.value, 64);
});
