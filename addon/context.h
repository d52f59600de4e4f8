// Context: one llama_context (KV cells shared by up to n_seq_max sequences). Decode and state
// export/import are async; KV bookkeeping calls are sync and refused while an async call is in flight.
#pragma once
#include <llama.h>
#include <napi.h>

#include <atomic>
#include <cstdint>
#include <utility>

namespace semantic {

class Model;

// Owns a ggml CPU threadpool and the free function its (dynamically loaded) backend exports.
class CpuThreadpool {
 public:
  CpuThreadpool() = default;
  CpuThreadpool(const CpuThreadpool&) = delete;
  CpuThreadpool& operator=(const CpuThreadpool&) = delete;
  CpuThreadpool& operator=(CpuThreadpool&& other) noexcept {
    Reset();
    std::swap(pool_, other.pool_);
    std::swap(free_, other.free_);
    return *this;
  }
  ~CpuThreadpool() { Reset(); }
  void Adopt(ggml_threadpool* pool, void (*free)(ggml_threadpool*)) {
    Reset();
    pool_ = pool;
    free_ = free;
  }
  void Reset() {
    if (pool_ != nullptr) free_(pool_);
    pool_ = nullptr;
  }
  bool Active() const { return pool_ != nullptr; }

 private:
  ggml_threadpool* pool_ = nullptr;
  void (*free_)(ggml_threadpool*) = nullptr;
};

// Where a decode's time went, summed since the context was created. Written by the decode's worker
// thread, read by timings() at any time (atomics: a read may land mid-decode). `queued` is the wait for
// a libuv thread, `settle` the wait from the end of the work to its completion on the JS thread:
// the two hops an async call adds around llama_decode.
struct DecodeTimings {
  std::atomic<uint64_t> decodes{0}, tokens{0}, queuedNs{0}, decodeNs{0}, sampleNs{0}, settleNs{0};
};

class Context : public Napi::ObjectWrap<Context> {
 public:
  static Napi::Function Define(Napi::Env env);
  static Napi::Value Create(const Napi::CallbackInfo& info);  // createContext(model, options) -> Promise<Context>

  explicit Context(const Napi::CallbackInfo& info);
  ~Context() override;

  llama_context* Handle() const { return ctx_; }
  // Claims the context for one async call; Release() runs on the JS thread when it settles.
  void Claim(Napi::Env env);
  void Release() { busy_ = false; }
  void CheckSeq(Napi::Env env, int32_t seq) const;
  DecodeTimings& Timings() { return timings_; }

 private:
  Napi::Value Info(const Napi::CallbackInfo& info);
  Napi::Value TimingsOf(const Napi::CallbackInfo& info);
  Napi::Value Decode(const Napi::CallbackInfo& info);
  Napi::Value StateSeqGet(const Napi::CallbackInfo& info);
  Napi::Value StateSeqSet(const Napi::CallbackInfo& info);
  Napi::Value StateSeqSetFile(const Napi::CallbackInfo& info);
  Napi::Value StateSeqSize(const Napi::CallbackInfo& info);
  Napi::Value LogitsAt(const Napi::CallbackInfo& info);
  Napi::Value SeqRemove(const Napi::CallbackInfo& info);
  Napi::Value SeqCopy(const Napi::CallbackInfo& info);
  Napi::Value SeqPosMax(const Napi::CallbackInfo& info);
  Napi::Value SeqPosMin(const Napi::CallbackInfo& info);
  Napi::Value Clear(const Napi::CallbackInfo& info);
  Napi::Value Dispose(const Napi::CallbackInfo& info);

  void EnsureIdle(Napi::Env env) const;
  int32_t SeqArg(const Napi::CallbackInfo& info, size_t index) const;
  void Free();

  llama_context* ctx_ = nullptr;
  CpuThreadpool pool_;
  Model* model_ = nullptr;
  Napi::ObjectReference modelRef_;
  bool busy_ = false;
  DecodeTimings timings_;
};

}  // namespace semantic
