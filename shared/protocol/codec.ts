/**
 * msgpack framing for the protocol. Every frame is `[PROTOCOL_VERSION, message]`; decoding checks the
 * version and the message's schema, so a malformed or foreign frame is a clear ProtocolError at the
 * boundary rather than an undefined field deep in the engine.
 */
import { Packr } from 'msgpackr';
import type { z } from 'zod';
import { ProtocolError } from '../errors.js';
import { frontToInferenceSchema, inferenceToFrontSchema, PROTOCOL_VERSION, type FrontToInference, type InferenceToFront } from './messages.js';

// Plain maps only: records would make frames depend on structures remembered by one peer.
const packr = new Packr({ useRecords: false, moreTypes: false });

/** Returns its own bytes: msgpackr packs into a reused buffer that the next encode would overwrite. */
export function encodeMessage(message: FrontToInference | InferenceToFront): Uint8Array {
  return new Uint8Array(packr.pack([PROTOCOL_VERSION, message]));
}

function decodeWith<T>(schema: z.ZodType<T>, frame: Uint8Array): T {
  let decoded: unknown;
  try {
    decoded = packr.unpack(frame);
  } catch (error) {
    throw new ProtocolError(`undecodable frame: ${(error as Error).message}`);
  }
  if (!Array.isArray(decoded) || decoded.length !== 2) throw new ProtocolError('frame is not [version, message]');
  const [version, message] = decoded as [unknown, unknown];
  if (version !== PROTOCOL_VERSION) {
    throw new ProtocolError(`protocol version ${String(version)} is not the supported version ${PROTOCOL_VERSION}`);
  }
  const parsed = schema.safeParse(message);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue === undefined || issue.path.length === 0 ? 'message' : issue.path.join('.');
    throw new ProtocolError(`invalid message: ${where}: ${issue?.message ?? 'rejected'}`);
  }
  return parsed.data;
}

export function decodeFrontMessage(frame: Uint8Array): FrontToInference {
  return decodeWith(frontToInferenceSchema, frame);
}

export function decodeInferenceMessage(frame: Uint8Array): InferenceToFront {
  return decodeWith(inferenceToFrontSchema, frame);
}
