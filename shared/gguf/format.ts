/**
 * GGUF v3 constants and the two number conversions the model maker needs (f32 → f16, Q8_0 blocks).
 * Layout reference: llama.cpp's ggml/include/gguf.h and gguf-py.
 */

export const GGUF_MAGIC = 0x46554747; // "GGUF" little-endian
export const GGUF_VERSION = 3;
export const GGUF_ALIGNMENT = 32;

export const ValueType = {
  UINT8: 0,
  INT8: 1,
  UINT16: 2,
  INT16: 3,
  UINT32: 4,
  INT32: 5,
  FLOAT32: 6,
  BOOL: 7,
  STRING: 8,
  ARRAY: 9,
  UINT64: 10,
  INT64: 11,
  FLOAT64: 12,
} as const;
export type ValueType = (typeof ValueType)[keyof typeof ValueType];

/** A metadata value with its exact GGUF type, so a copy round-trips byte for byte. */
export type GgufValue =
  | { type: Exclude<ValueType, 8 | 9 | 10 | 11>; value: number | boolean }
  | { type: 10 | 11; value: bigint }
  | { type: 8; value: string }
  | { type: 9; itemType: ValueType; value: (number | bigint | boolean | string)[] };

export const TensorType = { F32: 0, F16: 1, Q8_0: 8 } as const;
export type TensorType = (typeof TensorType)[keyof typeof TensorType];

export const Q8_0_BLOCK = 32;
const Q8_0_BLOCK_BYTES = 34; // f16 scale + 32 int8

/** Bytes of a tensor with `elements` values (a multiple of 32 for Q8_0). */
export function tensorBytes(type: TensorType, elements: number): number {
  if (type === TensorType.F32) return elements * 4;
  if (type === TensorType.F16) return elements * 2;
  if (elements % Q8_0_BLOCK !== 0) throw new Error(`Q8_0 needs a multiple of ${Q8_0_BLOCK} values, got ${elements}`);
  return (elements / Q8_0_BLOCK) * Q8_0_BLOCK_BYTES;
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** IEEE 754 binary16 bits of a number, rounded to nearest even (as ggml's GGML_FP32_TO_FP16). */
export function toFloat16Bits(value: number): number {
  f32[0] = value;
  const x = u32[0] as number;
  const sign = (x >>> 16) & 0x8000;
  const exponent = (x >>> 23) & 0xff;
  let mantissa = x & 0x7fffff;
  if (exponent === 0xff) return sign | 0x7c00 | (mantissa !== 0 ? 0x200 : 0);
  const e = exponent - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mantissa |= 0x800000;
    const shift = 14 - e;
    let half = mantissa >>> shift;
    const rest = mantissa & ((1 << shift) - 1);
    const midpoint = 1 << (shift - 1);
    if (rest > midpoint || (rest === midpoint && (half & 1) === 1)) half++;
    return sign | half;
  }
  let half = (e << 10) | (mantissa >>> 13);
  const rest = mantissa & 0x1fff;
  // A carry out of the mantissa bumps the exponent: still the correctly rounded value (or infinity).
  if (rest > 0x1000 || (rest === 0x1000 && (half & 1) === 1)) half++;
  return sign | half;
}

export function fromFloat16Bits(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >>> 10) & 0x1f;
  const mantissa = bits & 0x3ff;
  if (exponent === 0) return sign * mantissa * 2 ** -24;
  if (exponent === 0x1f) return mantissa === 0 ? sign * Infinity : NaN;
  return sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
}

/** C's roundf: halves go away from zero (Math.round sends -2.5 to -2). */
function roundHalfAway(x: number): number {
  return x < 0 ? -Math.round(-x) : Math.round(x);
}

/**
 * Q8_0 blocks as ggml lays them out: per 32 values, an f16 scale d = amax/127 then round(x/d) as int8.
 * The arithmetic goes through Math.fround because ggml's quantize_row_q8_0_ref works in float, and
 * writes go through typed arrays because this loop runs ~500M times for the 0.5B shape.
 */
export function quantizeQ8_0(values: Float32Array, out: Buffer, offset = 0): void {
  const bytes = new Int8Array(out.buffer, out.byteOffset, out.byteLength);
  for (let block = 0; block < values.length / Q8_0_BLOCK; block++) {
    const start = block * Q8_0_BLOCK;
    let amax = 0;
    for (let i = start; i < start + Q8_0_BLOCK; i++) amax = Math.max(amax, Math.abs(values[i] as number));
    const d = Math.fround(amax / 127);
    const inverse = d !== 0 ? Math.fround(1 / d) : 0;
    const at = offset + block * Q8_0_BLOCK_BYTES;
    out.writeUInt16LE(toFloat16Bits(d), at);
    for (let i = 0; i < Q8_0_BLOCK; i++) bytes[at + 2 + i] = roundHalfAway(Math.fround((values[start + i] as number) * inverse));
  }
}
