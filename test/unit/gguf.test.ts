// GGUF writer/reader round trip, exact f16 and Q8_0 bytes, and deterministic model generation.
import t from 'tap';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fromFloat16Bits, quantizeQ8_0, TensorType, toFloat16Bits, ValueType, type GgufValue } from '../../shared/gguf/format.js';
import { readGgufMetadata } from '../../shared/gguf/reader.js';
import { writeGguf } from '../../shared/gguf/writer.js';
import { makeModel } from '../../shared/gguf/make-model.js';

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
    return createHash('sha256').update(await readFile(path)).digest('hex');
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
