/**
 * Reads a GGUF file's header and metadata (never the tensor data), so the model maker can copy a
 * tokenizer and tools can inspect a model without loading its weights.
 */
import { open } from 'node:fs/promises';
import { GGUF_MAGIC, ValueType, type GgufValue } from './format.js';

class OutOfData extends Error {}

/** A cursor over the file's first bytes; throws OutOfData when the metadata runs past them. */
class Cursor {
  private at = 0;
  constructor(private readonly bytes: Buffer) {}

  private take(n: number): number {
    if (this.at + n > this.bytes.length) throw new OutOfData();
    const start = this.at;
    this.at += n;
    return start;
  }
  u8 = (): number => this.bytes.readUInt8(this.take(1));
  i8 = (): number => this.bytes.readInt8(this.take(1));
  u16 = (): number => this.bytes.readUInt16LE(this.take(2));
  i16 = (): number => this.bytes.readInt16LE(this.take(2));
  u32 = (): number => this.bytes.readUInt32LE(this.take(4));
  i32 = (): number => this.bytes.readInt32LE(this.take(4));
  f32 = (): number => this.bytes.readFloatLE(this.take(4));
  f64 = (): number => this.bytes.readDoubleLE(this.take(8));
  u64 = (): bigint => this.bytes.readBigUInt64LE(this.take(8));
  i64 = (): bigint => this.bytes.readBigInt64LE(this.take(8));
  count = (): number => Number(this.u64());
  string = (): string => {
    const length = this.count();
    const start = this.take(length);
    return this.bytes.toString('utf8', start, start + length);
  };
}

function readScalar(cursor: Cursor, type: ValueType): number | bigint | boolean | string {
  switch (type) {
    case ValueType.UINT8:
      return cursor.u8();
    case ValueType.INT8:
      return cursor.i8();
    case ValueType.UINT16:
      return cursor.u16();
    case ValueType.INT16:
      return cursor.i16();
    case ValueType.UINT32:
      return cursor.u32();
    case ValueType.INT32:
      return cursor.i32();
    case ValueType.FLOAT32:
      return cursor.f32();
    case ValueType.FLOAT64:
      return cursor.f64();
    case ValueType.BOOL:
      return cursor.u8() !== 0;
    case ValueType.STRING:
      return cursor.string();
    case ValueType.UINT64:
      return cursor.u64();
    case ValueType.INT64:
      return cursor.i64();
    default:
      throw new Error(`GGUF: value type ${type} cannot be an array item here`);
  }
}

function readValue(cursor: Cursor): GgufValue {
  const type = cursor.u32() as ValueType;
  if (type === ValueType.ARRAY) {
    const itemType = cursor.u32() as ValueType;
    const length = cursor.count();
    const value = Array.from({ length }, () => readScalar(cursor, itemType));
    return { type, itemType, value };
  }
  return { type, value: readScalar(cursor, type) } as GgufValue;
}

function parseMetadata(bytes: Buffer): Map<string, GgufValue> {
  const cursor = new Cursor(bytes);
  if (cursor.u32() !== GGUF_MAGIC) throw new Error('not a GGUF file (bad magic)');
  const version = cursor.u32();
  if (version !== 3 && version !== 2) throw new Error(`unsupported GGUF version ${version}`);
  cursor.count(); // tensor count
  const kvCount = cursor.count();
  const metadata = new Map<string, GgufValue>();
  for (let i = 0; i < kvCount; i++) metadata.set(cursor.string(), readValue(cursor));
  return metadata;
}

/** Reads growing prefixes of the file until the metadata fits (vocabularies are a few MB). */
export async function readGgufMetadata(path: string): Promise<Map<string, GgufValue>> {
  const file = await open(path, 'r');
  try {
    const { size } = await file.stat();
    for (let length = Math.min(size, 1 << 24); ; length = Math.min(size, length * 4)) {
      const bytes = Buffer.alloc(length);
      await file.read(bytes, 0, length, 0);
      try {
        return parseMetadata(bytes);
      } catch (error) {
        if (!(error instanceof OutOfData)) throw error;
        if (length === size) throw new Error(`GGUF metadata of ${path} is truncated`);
      }
    }
  } finally {
    await file.close();
  }
}
