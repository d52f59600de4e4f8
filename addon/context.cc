#include "context.h"

#include <ggml-backend.h>
#include <ggml-cpu.h>

#include <algorithm>
#include <string>

#include "common.h"
#include "model.h"
#include "workers.h"

namespace semantic {
namespace {

ggml_type KvType(Napi::Env env, const Napi::Object& options, const char* key) {
  Napi::Value value = options.Get(key);
  if (value.IsUndefined()) return GGML_TYPE_F16;
  std::string name = value.IsString() ? value.As<Napi::String>().Utf8Value() : "";
  if (name == "f16") return GGML_TYPE_F16;
  if (name == "q8_0") return GGML_TYPE_Q8_0;
  if (name == "q4_0") return GGML_TYPE_Q4_0;
  throw Napi::TypeError::New(env, std::string(key) + " must be one of f16, q8_0, q4_0");
}

llama_context_params ContextParams(Napi::Env env, const Napi::Object& options) {
  llama_context_params params = llama_context_default_params();
  int32_t nCtx = OptionalInt(options, "nCtx", 4096);
  int32_t nSeqMax = OptionalInt(options, "nSeqMax", 1);
  int32_t nBatch = OptionalInt(options, "nBatch", 512);
  int32_t threads = OptionalInt(options, "threads", 0);
  if (nCtx < 16) throw Napi::RangeError::New(env, "nCtx must be >= 16");
  if (nSeqMax < 1 || static_cast<size_t>(nSeqMax) > llama_max_parallel_sequences()) {
    throw Napi::RangeError::New(env, "nSeqMax must be in [1, " + std::to_string(llama_max_parallel_sequences()) + "]");
  }
  if (nBatch < 1) throw Napi::RangeError::New(env, "nBatch must be >= 1");
  if (threads < 0) throw Napi::RangeError::New(env, "threads must be >= 0 (0 = llama.cpp's default)");
  params.n_ctx = nCtx;
  params.n_seq_max = nSeqMax;
  params.n_batch = nBatch;
  params.n_ubatch = OptionalInt(options, "nUbatch", nBatch);
  if (threads > 0) params.n_threads = params.n_threads_batch = threads;
  params.type_k = KvType(env, options, "typeK");
  params.type_v = KvType(env, options, "typeV");
  params.flash_attn_type = OptionalBool(options, "flashAttention", false) ? LLAMA_FLASH_ATTN_TYPE_ENABLED
                                                                          : LLAMA_FLASH_ATTN_TYPE_DISABLED;
  // One pool of cells for all sequences: the block pool in TS accounts for them as one budget.
  params.kv_unified = OptionalBool(options, "kvUnified", true);
  params.no_perf = true;
  return params;
}

// The CPU backend is loaded at run time, so its threadpool functions are looked up, not linked.
struct ThreadpoolFns {
  decltype(ggml_threadpool_new)* make = nullptr;
  decltype(ggml_threadpool_free)* free = nullptr;
};

ThreadpoolFns CpuThreadpoolFns() {
  ggml_backend_dev_t cpu = ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU);
  if (cpu == nullptr) return {};
  ggml_backend_reg_t reg = ggml_backend_dev_backend_reg(cpu);
  ThreadpoolFns fns;
  fns.make = reinterpret_cast<decltype(ggml_threadpool_new)*>(ggml_backend_reg_get_proc_address(reg, "ggml_threadpool_new"));
  fns.free = reinterpret_cast<decltype(ggml_threadpool_free)*>(ggml_backend_reg_get_proc_address(reg, "ggml_threadpool_free"));
  return fns.make != nullptr && fns.free != nullptr ? fns : ThreadpoolFns{};
}

class CreateContextWorker : public PromiseWorker {
 public:
  CreateContextWorker(Napi::Env env, Napi::Object model, llama_model* handle, llama_context_params params, int32_t poll)
      : PromiseWorker(env, "llama_init_from_model"), handle_(handle), params_(params), poll_(poll) {
    model_ = Napi::Persistent(model);
  }
  ~CreateContextWorker() override {
    if (ctx_ != nullptr) llama_free(ctx_);  // created, but the JS side never took it
    pool_.Reset();
  }

 protected:
  void Run() override {
    ctx_ = llama_init_from_model(handle_, params_);
    if (ctx_ == nullptr) return Fail("ERR_CONTEXT_CREATE", "cannot create a context (out of memory, or a bad parameter mix)");
    if (poll_ >= 0) AttachThreadpool();
  }
  Napi::Value Result() override {
    Napi::Env env = Env();
    Napi::Value context = env.GetInstanceData<AddonData>()->context.New(
        {model_.Value(), Napi::External<llama_context>::New(env, ctx_), Napi::External<CpuThreadpool>::New(env, &pool_)});
    ctx_ = nullptr;
    return context;
  }

 private:
  // Without a pool attached, ggml's CPU backend starts and joins its worker threads on every graph
  // compute (every ubatch of every decode) and never polls between them; llama-server attaches one
  // (common_threadpools::init) with the same thread count for single-token and batch graphs.
  void AttachThreadpool() {
    ThreadpoolFns fns = CpuThreadpoolFns();
    if (fns.make == nullptr) return;  // no CPU backend (a GPU-only build): nothing to pool
    ggml_threadpool_params tpp = ggml_threadpool_params_default(llama_n_threads(ctx_));
    tpp.poll = static_cast<uint32_t>(poll_);
    ggml_threadpool* pool = fns.make(&tpp);
    if (pool == nullptr) return;  // llama.cpp's per-compute threads still work
    pool_.Adopt(pool, fns.free);
    llama_attach_threadpool(ctx_, pool, nullptr);
  }

  Napi::ObjectReference model_;
  llama_model* handle_;
  llama_context_params params_;
  int32_t poll_;
  llama_context* ctx_ = nullptr;
  CpuThreadpool pool_;
};

}  // namespace

Napi::Function Context::Define(Napi::Env env) {
  return DefineClass(
      env, "Context",
      {InstanceMethod<&Context::Info>("info"), InstanceMethod<&Context::TimingsOf>("timings"), InstanceMethod<&Context::Decode>("decode"),
       InstanceMethod<&Context::StateSeqGet>("stateSeqGet"), InstanceMethod<&Context::StateSeqSet>("stateSeqSet"),
       InstanceMethod<&Context::StateSeqSetFile>("stateSeqSetFile"),
       InstanceMethod<&Context::StateSeqSize>("stateSeqSize"), InstanceMethod<&Context::LogitsAt>("logitsAt"),
       InstanceMethod<&Context::SeqRemove>("seqRemove"),
       InstanceMethod<&Context::SeqCopy>("seqCopy"), InstanceMethod<&Context::SeqPosMax>("seqPosMax"),
       InstanceMethod<&Context::SeqPosMin>("seqPosMin"), InstanceMethod<&Context::Clear>("clear"),
       InstanceMethod<&Context::Dispose>("dispose")});
}

Napi::Value Context::Create(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Model* model = Model::FromValue(env, info.Length() > 0 ? info[0] : env.Undefined());
  Napi::Object options = OptionsArg(info, 1);
  llama_context_params params = ContextParams(env, options);
  // -1: no pool (llama.cpp's per-compute threads); else ggml's polling level, 0 (sleep) to 100.
  int32_t poll = OptionalInt(options, "threadpoolPoll", 50);
  if (poll < -1 || poll > 100) throw Napi::RangeError::New(env, "threadpoolPoll must be -1 (no pool) or in [0, 100]");
  auto* worker = new CreateContextWorker(env, info[0].As<Napi::Object>(), model->Handle(env), params, poll);
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

// Only reached from CreateContextWorker: (model, External<llama_context>, External<CpuThreadpool>).
Context::Context(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Context>(info) {
  if (info.Length() < 3 || !info[1].IsExternal() || !info[2].IsExternal()) {
    throw Napi::TypeError::New(info.Env(), "Context cannot be constructed directly: use createContext()");
  }
  model_ = Model::FromValue(info.Env(), info[0]);
  modelRef_ = Napi::Persistent(info[0].As<Napi::Object>());
  ctx_ = info[1].As<Napi::External<llama_context>>().Data();
  pool_ = std::move(*info[2].As<Napi::External<CpuThreadpool>>().Data());
  model_->AddContext();
}

Context::~Context() { Free(); }

void Context::Free() {
  if (ctx_ == nullptr) return;
  llama_free(ctx_);
  ctx_ = nullptr;
  pool_.Reset();  // after the context: a compute in llama_free must not find its pool gone
  model_->RemoveContext();
}

void Context::EnsureIdle(Napi::Env env) const {
  if (ctx_ == nullptr) ThrowCoded(env, "ERR_DISPOSED", "context is disposed");
  if (busy_) ThrowCoded(env, "ERR_BUSY", "context has an async call in flight: await it first");
}

void Context::Claim(Napi::Env env) {
  EnsureIdle(env);
  busy_ = true;
}

void Context::CheckSeq(Napi::Env env, int32_t seq) const {
  if (seq < 0 || static_cast<uint32_t>(seq) >= llama_n_seq_max(ctx_)) {
    throw Napi::RangeError::New(env, "sequence id " + std::to_string(seq) + " is outside [0, n_seq_max)");
  }
}

int32_t Context::SeqArg(const Napi::CallbackInfo& info, size_t index) const {
  if (info.Length() <= index || !info[index].IsNumber()) throw Napi::TypeError::New(info.Env(), "sequence id must be a number");
  int32_t seq = info[index].As<Napi::Number>().Int32Value();
  CheckSeq(info.Env(), seq);
  return seq;
}

Napi::Value Context::Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  EnsureIdle(env);
  Napi::Object out = Napi::Object::New(env);
  out.Set("nCtx", llama_n_ctx(ctx_));
  out.Set("nCtxSeq", llama_n_ctx_seq(ctx_));
  out.Set("nSeqMax", llama_n_seq_max(ctx_));
  out.Set("nBatch", llama_n_batch(ctx_));
  out.Set("nUbatch", llama_n_ubatch(ctx_));
  out.Set("threads", llama_n_threads(ctx_));
  out.Set("threadpool", pool_.Active());
  out.Set("stateBytes", static_cast<double>(llama_state_get_size(ctx_)));
  return out;
}

// Milliseconds (and counts) as doubles: exact well past any uptime.
Napi::Value Context::TimingsOf(const Napi::CallbackInfo& info) {
  Napi::Object out = Napi::Object::New(info.Env());
  auto ms = [](const std::atomic<uint64_t>& ns) { return static_cast<double>(ns.load()) / 1e6; };
  out.Set("decodes", static_cast<double>(timings_.decodes.load()));
  out.Set("tokens", static_cast<double>(timings_.tokens.load()));
  out.Set("queuedMs", ms(timings_.queuedNs));
  out.Set("decodeMs", ms(timings_.decodeNs));
  out.Set("sampleMs", ms(timings_.sampleNs));
  out.Set("settleMs", ms(timings_.settleNs));
  return out;
}

Napi::Value Context::Decode(const Napi::CallbackInfo& info) { return DecodeWorker::Start(info, this); }
Napi::Value Context::StateSeqGet(const Napi::CallbackInfo& info) { return StateGetWorker::Start(info, this, SeqArg(info, 0)); }
Napi::Value Context::StateSeqSet(const Napi::CallbackInfo& info) { return StateSetWorker::Start(info, this, SeqArg(info, 0)); }
Napi::Value Context::StateSeqSetFile(const Napi::CallbackInfo& info) {
  return StateSetFileWorker::Start(info, this, SeqArg(info, 0));
}

Napi::Value Context::StateSeqSize(const Napi::CallbackInfo& info) {
  EnsureIdle(info.Env());
  return Napi::Number::New(info.Env(), static_cast<double>(llama_state_seq_get_size(ctx_, SeqArg(info, 0))));
}

// logitsAt(index): a copy of the logits row of batch index `index` of the last decode, kept with an
// agent's cache so that a request whose whole prompt is cached can sample without a decode.
Napi::Value Context::LogitsAt(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  EnsureIdle(env);
  if (info.Length() < 1 || !info[0].IsNumber()) throw Napi::TypeError::New(env, "logitsAt: index must be a number");
  int32_t index = info[0].As<Napi::Number>().Int32Value();
  const int32_t nVocab = llama_vocab_n_tokens(llama_model_get_vocab(llama_get_model(ctx_)));
  const int32_t nOutputs = llama_n_batch(ctx_);
  if (index < 0 || index >= nOutputs) throw Napi::RangeError::New(env, "logitsAt: index outside the last batch");
  const float* logits = llama_get_logits_ith(ctx_, index);
  if (logits == nullptr) throw Napi::RangeError::New(env, "logitsAt: the last batch has no logits at this index");
  Napi::Float32Array out = Napi::Float32Array::New(env, nVocab);
  std::copy(logits, logits + nVocab, out.Data());
  return out;
}

Napi::Value Context::SeqRemove(const Napi::CallbackInfo& info) {
  EnsureIdle(info.Env());
  int32_t seq = SeqArg(info, 0);
  int32_t p0 = info.Length() > 1 && info[1].IsNumber() ? info[1].As<Napi::Number>().Int32Value() : -1;
  int32_t p1 = info.Length() > 2 && info[2].IsNumber() ? info[2].As<Napi::Number>().Int32Value() : -1;
  return Napi::Boolean::New(info.Env(), llama_memory_seq_rm(llama_get_memory(ctx_), seq, p0, p1));
}

Napi::Value Context::SeqCopy(const Napi::CallbackInfo& info) {
  EnsureIdle(info.Env());
  int32_t src = SeqArg(info, 0);
  int32_t dst = SeqArg(info, 1);
  int32_t p0 = info.Length() > 2 && info[2].IsNumber() ? info[2].As<Napi::Number>().Int32Value() : -1;
  int32_t p1 = info.Length() > 3 && info[3].IsNumber() ? info[3].As<Napi::Number>().Int32Value() : -1;
  llama_memory_seq_cp(llama_get_memory(ctx_), src, dst, p0, p1);
  return info.Env().Undefined();
}

Napi::Value Context::SeqPosMax(const Napi::CallbackInfo& info) {
  EnsureIdle(info.Env());
  return Napi::Number::New(info.Env(), llama_memory_seq_pos_max(llama_get_memory(ctx_), SeqArg(info, 0)));
}

Napi::Value Context::SeqPosMin(const Napi::CallbackInfo& info) {
  EnsureIdle(info.Env());
  return Napi::Number::New(info.Env(), llama_memory_seq_pos_min(llama_get_memory(ctx_), SeqArg(info, 0)));
}

Napi::Value Context::Clear(const Napi::CallbackInfo& info) {
  EnsureIdle(info.Env());
  llama_memory_clear(llama_get_memory(ctx_), true);
  return info.Env().Undefined();
}

Napi::Value Context::Dispose(const Napi::CallbackInfo& info) {
  if (busy_) ThrowCoded(info.Env(), "ERR_BUSY", "context has an async call in flight: await it first");
  Free();
  modelRef_.Reset();  // on the JS thread with a live env: safe, and lets the model be collected
  return info.Env().Undefined();
}

}  // namespace semantic
