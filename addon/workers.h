// The async calls on a Context: one AsyncWorker each (decode + sampling, state export, state import).
#pragma once
#include <napi.h>

namespace semantic {

class Context;

struct DecodeWorker {
  // decode({tokens, positions, seqIds, logits}, [{index, sampler}]) -> Promise<Int32Array of sampled tokens>
  static Napi::Value Start(const Napi::CallbackInfo& info, Context* context);
};

struct StateGetWorker {
  // stateSeqGet(seq) -> Promise<Uint8Array>; the bytes land in a V8-owned ArrayBuffer, so they can be
  // transferred (not copied) to another thread.
  static Napi::Value Start(const Napi::CallbackInfo& info, Context* context, int32_t seq);
};

struct StateSetWorker {
  // stateSeqSet(seq, bytes) -> Promise<number of bytes read>
  static Napi::Value Start(const Napi::CallbackInfo& info, Context* context, int32_t seq);
};

struct StateSetFileWorker {
  // stateSeqSetFile(seq, {path, fileBytes, dataOffset, dataBytes, crc32, stateOffset, stateBytes})
  //   -> Promise<number of bytes read>. Maps the file, checks its size and the CRC-32 of its data
  //   section, then imports the state straight from the mapping: no copy of the file into JS memory.
  static Napi::Value Start(const Napi::CallbackInfo& info, Context* context, int32_t seq);
};

}  // namespace semantic
