/**
 * Writes GGUF v3 files tensor by tensor, so a 500 MB model never sits in memory at once. The file
 * appears atomically: written to a temp file beside the target, fsynced, then renamed.
 */
import { randomBytes } from 'node:crypto';
import { open, rename, rm, type FileHandle } from 'node:fs/promises';
import { GGUF_ALIGNMENT, GGUF_MAGIC, GGUF_VERSION, TensorType, ValueType, quantizeQ8_0, tensorBytes, toFloat16Bits, type GgufValue } from './format.js';

export interface TensorSpec {
  name: string;
  /** ggml order: shape[0] is the row length. */
  shape: number[];
  type: TensorType;
  /**
   * Produces the tensor's values (row-major, shape[0] fastest) when it is written: one array, or
   * chunks of whole blocks so that a 136M-value embedding never exists as one 545 MB array.
   */
  values: () => Float32Array | Iterable<Float32Array>;
}

/** Little-endian byte builder for the header. */
class Bytes {
  private readonly parts: Buffer[] = [];
  private length = 0;

  push(buffer: Buffer): void {
    this.parts.push(buffer);
    this.length += buffer.length;
  }
  u32(v: number): void {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(v);
    this.push(b);
  }
  u64(v: number | bigint): void {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt(v));
    this.push(b);
  }
  string(s: string): void {
    const b = Buffer.from(s, 'utf8');
    this.u64(b.length);
    this.push(b);
  }
  padTo(alignment: number): void {
    const pad = (alignment - (this.length % alignment)) % alignment;
    this.push(Buffer.alloc(pad));
  }
  concat(): Buffer {
    return Buffer.concat(this.parts, this.length);
  }
}

function writeScalar(out: Bytes, type: ValueType, value: number | bigint | boolean | string): void {
  const b = Buffer.alloc(8);
  switch (type) {
    case ValueType.UINT8:
      b.writeUInt8(value as number);
      return out.push(b.subarray(0, 1));
    case ValueType.INT8:
      b.writeInt8(value as number);
      return out.push(b.subarray(0, 1));
    case ValueType.UINT16:
      b.writeUInt16LE(value as number);
      return out.push(b.subarray(0, 2));
    case ValueType.INT16:
      b.writeInt16LE(value as number);
      return out.push(b.subarray(0, 2));
    case ValueType.UINT32:
      b.writeUInt32LE(value as number);
      return out.push(b.subarray(0, 4));
    case ValueType.INT32:
      b.writeInt32LE(value as number);
      return out.push(b.subarray(0, 4));
    case ValueType.FLOAT32:
      b.writeFloatLE(value as number);
      return out.push(b.subarray(0, 4));
    case ValueType.FLOAT64:
      b.writeDoubleLE(value as number);
      return out.push(b);
    case ValueType.BOOL:
      b.writeUInt8(value === true ? 1 : 0);
      return out.push(b.subarray(0, 1));
    case ValueType.UINT64:
      b.writeBigUInt64LE(BigInt(value as bigint));
      return out.push(b);
    case ValueType.INT64:
      b.writeBigInt64LE(BigInt(value as bigint));
      return out.push(b);
    case ValueType.STRING:
      return out.string(value as string);
    default:
      throw new Error(`GGUF: cannot write a nested array`);
  }
}

function writeValue(out: Bytes, value: GgufValue): void {
  out.u32(value.type);
  if (value.type === ValueType.ARRAY) {
    out.u32(value.itemType);
    out.u64(value.value.length);
    for (const item of value.value) writeScalar(out, value.itemType, item);
    return;
  }
  writeScalar(out, value.type, value.value);
}

function elementCount(shape: number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

function alignUp(n: number): number {
  return Math.ceil(n / GGUF_ALIGNMENT) * GGUF_ALIGNMENT;
}

function header(metadata: Map<string, GgufValue>, tensors: TensorSpec[]): Buffer {
  const out = new Bytes();
  out.u32(GGUF_MAGIC);
  out.u32(GGUF_VERSION);
  out.u64(tensors.length);
  out.u64(metadata.size);
  for (const [key, value] of metadata) {
    out.string(key);
    writeValue(out, value);
  }
  let offset = 0;
  for (const tensor of tensors) {
    out.string(tensor.name);
    out.u32(tensor.shape.length);
    for (const dim of tensor.shape) out.u64(dim);
    out.u32(tensor.type);
    out.u64(offset);
    offset = alignUp(offset + tensorBytes(tensor.type, elementCount(tensor.shape)));
  }
  out.padTo(GGUF_ALIGNMENT);
  return out.concat();
}

/** Encodes values (a whole number of blocks) without padding; the caller pads the tensor's end. */
export function encodeTensor(type: TensorType, values: Float32Array): Buffer {
  const out = Buffer.alloc(tensorBytes(type, values.length));
  if (type === TensorType.F32) Buffer.from(values.buffer, values.byteOffset, values.byteLength).copy(out);
  else if (type === TensorType.F16) values.forEach((v, i) => out.writeUInt16LE(toFloat16Bits(v), i * 2));
  else quantizeQ8_0(values, out);
  return out;
}

/** write(2) may write less than asked; a short write must not silently shift every later tensor. */
async function writeAll(file: FileHandle, buffer: Buffer): Promise<void> {
  for (let done = 0; done < buffer.length;) done += (await file.write(buffer, done)).bytesWritten;
}

/** Streams one tensor chunk by chunk, then pads it so the next tensor starts aligned. */
async function writeTensor(file: FileHandle, tensor: TensorSpec): Promise<void> {
  const produced = tensor.values();
  let count = 0;
  for (const chunk of produced instanceof Float32Array ? [produced] : produced) {
    await writeAll(file, encodeTensor(tensor.type, chunk));
    count += chunk.length;
  }
  if (count !== elementCount(tensor.shape)) throw new Error(`tensor ${tensor.name}: ${count} values for shape ${tensor.shape.join('x')}`);
  const bytes = tensorBytes(tensor.type, count);
  if (alignUp(bytes) > bytes) await writeAll(file, Buffer.alloc(alignUp(bytes) - bytes));
}

export async function writeGguf(path: string, metadata: Map<string, GgufValue>, tensors: TensorSpec[]): Promise<void> {
  // Unique per call, so racing writers (processes or calls in one process) never share a temp file.
  const temp = `${path}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  const file = await open(temp, 'w');
  try {
    await writeAll(file, header(metadata, tensors));
    for (const tensor of tensors) await writeTensor(file, tensor);
    await file.sync();
    await file.close();
    await rename(temp, path);
  } catch (error) {
    await file.close().catch(() => undefined);
    await rm(temp, { force: true });
    throw error;
  }
}
