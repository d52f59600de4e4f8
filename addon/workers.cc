#include "workers.h"

#include <llama.h>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>  // Node's own zlib, whose symbols the node binary exports to addons

#include <chrono>
#include <string>
#include <vector>

#include "common.h"
#include "context.h"
#include "sampler.h"

namespace semantic {
namespace {

// Holds the context (and everything it lends) until the call settles, so GC cannot free them mid-call.
class ContextWorker : public PromiseWorker {
 public:
  ContextWorker(Napi::Env env, const char* name, Napi::Object owner, Context* context)
      : PromiseWorker(env, name), context_(context) {
    owner_ = Napi::Persistent(owner);
  }

 protected:
  // References are released by the worker's destructor: Reset() can throw while the env is torn down.
  void Settle() override { context_->Release(); }
  llama_context* Ctx() const { return context_->Handle(); }

  Context* context_;

 private:
  Napi::ObjectReference owner_;
};

struct SampleRequest {
  int32_t index;
  Sampler* sampler;
  Napi::ObjectReference ref;
};

uint64_t NowNs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch()).count());
}

const char* DecodeErrorCode(int32_t rc) {
  switch (rc) {
    case 1: return "ERR_KV_NO_SLOT";
    case 2: return "ERR_DECODE_ABORTED";
    case -1: return "ERR_DECODE_INVALID_BATCH";
    default: return "ERR_DECODE_FATAL";
  }
}

Napi::Int32Array Int32Field(Napi::Env env, const Napi::Object& batch, const char* key) {
  return TypedArrayArg<Napi::Int32Array>(env, batch.Get(key), napi_int32_array, std::string("decode: batch.") + key + " must be an Int32Array");
}

class Decode : public ContextWorker {
 public:
  Decode(Napi::Env env, Napi::Object owner, Context* context, const Napi::Object& batch)
      : ContextWorker(env, "llama_decode", owner, context) {
    Napi::Int32Array tokens = Int32Field(env, batch, "tokens");
    Napi::Int32Array positions = Int32Field(env, batch, "positions");
    Napi::Int32Array seqIds = Int32Field(env, batch, "seqIds");
    auto flags = TypedArrayArg<Napi::Uint8Array>(env, batch.Get("logits"), napi_uint8_array, "decode: batch.logits must be a Uint8Array");
    tokens_.assign(tokens.Data(), tokens.Data() + tokens.ElementLength());
    positions_.assign(positions.Data(), positions.Data() + positions.ElementLength());
    seqIds_.assign(seqIds.Data(), seqIds.Data() + seqIds.ElementLength());
    logits_.assign(flags.Data(), flags.Data() + flags.ElementLength());
  }

  void Validate(Napi::Env env) {
    size_t n = tokens_.size();
    if (n == 0) throw Napi::RangeError::New(env, "decode: empty batch");
    if (positions_.size() != n || seqIds_.size() != n || logits_.size() != n) {
      throw Napi::RangeError::New(env, "decode: tokens, positions, seqIds and logits must have the same length");
    }
    if (n > llama_n_batch(Ctx())) {
      throw Napi::RangeError::New(env, "decode: " + std::to_string(n) + " tokens exceed n_batch " +
                                           std::to_string(llama_n_batch(Ctx())));
    }
    int32_t nVocab = llama_vocab_n_tokens(llama_model_get_vocab(llama_get_model(Ctx())));
    for (size_t i = 0; i < n; i++) {
      if (tokens_[i] < 0 || tokens_[i] >= nVocab) throw Napi::RangeError::New(env, "decode: token outside the vocabulary");
      if (positions_[i] < 0) throw Napi::RangeError::New(env, "decode: negative position");
      context_->CheckSeq(env, seqIds_[i]);
    }
  }

  void AddSample(Napi::Env env, const Napi::Object& request) {
    Napi::Value index = request.Get("index");
    if (!index.IsNumber()) throw Napi::TypeError::New(env, "decode: sample.index must be a number");
    int32_t i = index.As<Napi::Number>().Int32Value();
    if (i < 0 || static_cast<size_t>(i) >= logits_.size() || logits_[i] == 0) {
      throw Napi::RangeError::New(env, "decode: sample.index must point at a token with logits set");
    }
    Napi::Value sampler = request.Get("sampler");
    Sampler* unwrapped = Sampler::FromValue(env, sampler);
    unwrapped->Handle(env);
    samples_.push_back({i, unwrapped, Napi::Persistent(sampler.As<Napi::Object>())});
  }

  void LendSamplers() {
    for (SampleRequest& s : samples_) s.sampler->Lend();
    lent_ = true;
  }

 protected:
  void Run() override {
    const uint64_t started = NowNs();
    llama_batch batch = llama_batch_init(static_cast<int32_t>(tokens_.size()), 0, 1);
    batch.n_tokens = static_cast<int32_t>(tokens_.size());
    for (size_t i = 0; i < tokens_.size(); i++) {
      batch.token[i] = tokens_[i];
      batch.pos[i] = positions_[i];
      batch.n_seq_id[i] = 1;
      batch.seq_id[i][0] = seqIds_[i];
      batch.logits[i] = logits_[i] != 0;
    }
    int32_t rc = llama_decode(Ctx(), batch);
    llama_batch_free(batch);
    if (rc != 0) return Fail(DecodeErrorCode(rc), "returned " + std::to_string(rc));
    const uint64_t decoded = NowNs();
    sampled_.reserve(samples_.size());
    for (SampleRequest& s : samples_) {
      sampled_.push_back(s.sampler->Sample(Ctx(), s.index));
    }
    ended_ = NowNs();
    DecodeTimings& t = context_->Timings();
    t.decodes++;
    t.tokens += tokens_.size();
    t.queuedNs += started - queued_;
    t.decodeNs += decoded - started;
    t.sampleNs += ended_ - decoded;
  }
  Napi::Value Result() override {
    Napi::Int32Array out = Napi::Int32Array::New(Env(), sampled_.size());
    std::copy(sampled_.begin(), sampled_.end(), out.Data());
    return out;
  }
  void Settle() override {
    if (ended_ != 0) context_->Timings().settleNs += NowNs() - ended_;
    if (lent_) {
      for (SampleRequest& s : samples_) s.sampler->Return();
    }
    ContextWorker::Settle();
  }

 private:
  std::vector<llama_token> tokens_;
  std::vector<llama_pos> positions_;
  std::vector<llama_seq_id> seqIds_;
  std::vector<uint8_t> logits_;
  std::vector<SampleRequest> samples_;
  std::vector<llama_token> sampled_;
  bool lent_ = false;
  const uint64_t queued_ = NowNs();
  uint64_t ended_ = 0;
};

class StateGet : public ContextWorker {
 public:
  StateGet(Napi::Env env, Napi::Object owner, Context* context, int32_t seq)
      : ContextWorker(env, "llama_state_seq_get_data", owner, context), seq_(seq) {
    size_ = llama_state_seq_get_size(Ctx(), seq);
    Napi::ArrayBuffer buffer = Napi::ArrayBuffer::New(env, size_);
    data_ = static_cast<uint8_t*>(buffer.Data());
    buffer_ = Napi::Persistent(buffer);
  }

 protected:
  void Run() override {
    written_ = llama_state_seq_get_data(Ctx(), data_, size_, seq_);
    if (written_ == 0) Fail("ERR_STATE_EXPORT", "exported no bytes for sequence " + std::to_string(seq_));
  }
  Napi::Value Result() override { return Napi::Uint8Array::New(Env(), written_, buffer_.Value(), 0); }

 private:
  int32_t seq_;
  size_t size_ = 0;
  size_t written_ = 0;
  uint8_t* data_ = nullptr;
  Napi::Reference<Napi::ArrayBuffer> buffer_;
};

class StateSet : public ContextWorker {
 public:
  StateSet(Napi::Env env, Napi::Object owner, Context* context, int32_t seq, Napi::Uint8Array bytes)
      : ContextWorker(env, "llama_state_seq_set_data", owner, context), seq_(seq) {
    data_ = bytes.Data();
    size_ = bytes.ByteLength();
    bytes_ = Napi::Persistent(bytes.As<Napi::Object>());
  }

 protected:
  void Run() override {
    read_ = llama_state_seq_set_data(Ctx(), data_, size_, seq_);
    if (read_ == 0) Fail("ERR_STATE_IMPORT", "state does not match this context, or no room for it");
  }
  Napi::Value Result() override { return Napi::Number::New(Env(), static_cast<double>(read_)); }

 private:
  int32_t seq_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  size_t read_ = 0;
  Napi::ObjectReference bytes_;
};

struct FileSpan {
  std::string path;
  uint64_t fileBytes, dataOffset, dataBytes, stateOffset, stateBytes;
  uint32_t crc32;
};

uint64_t SpanField(Napi::Env env, const Napi::Object& span, const char* key) {
  Napi::Value value = span.Get(key);
  if (!value.IsNumber() || value.As<Napi::Number>().DoubleValue() < 0) {
    throw Napi::TypeError::New(env, std::string("stateSeqSetFile: ") + key + " must be a non-negative number");
  }
  return static_cast<uint64_t>(value.As<Napi::Number>().DoubleValue());
}

FileSpan ReadSpan(Napi::Env env, const Napi::Value& value) {
  if (!value.IsObject() || !value.As<Napi::Object>().Get("path").IsString()) {
    throw Napi::TypeError::New(env, "stateSeqSetFile: span must be an object with a string path");
  }
  Napi::Object span = value.As<Napi::Object>();
  FileSpan out{span.Get("path").As<Napi::String>().Utf8Value(), SpanField(env, span, "fileBytes"), SpanField(env, span, "dataOffset"),
               SpanField(env, span, "dataBytes"), SpanField(env, span, "stateOffset"), SpanField(env, span, "stateBytes"),
               static_cast<uint32_t>(SpanField(env, span, "crc32"))};
  bool inside = out.dataOffset + out.dataBytes == out.fileBytes && out.stateOffset >= out.dataOffset &&
                out.stateOffset + out.stateBytes <= out.fileBytes;
  if (!inside) throw Napi::RangeError::New(env, "stateSeqSetFile: the state and data must lie inside the file");
  return out;
}

// A read-only private mapping of a whole file, unmapped and closed on scope exit.
class MappedFile {
 public:
  explicit MappedFile(const std::string& path) {
    fd_ = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    struct stat st {};
    if (fd_ < 0 || fstat(fd_, &st) != 0) return;
    size_ = static_cast<uint64_t>(st.st_size);
    if (size_ == 0) return;
    // MAP_POPULATE maps every page now (they are in the page cache after a recent write or read)
    // instead of taking a fault per 4 KiB page during the checksum.
    void* base = mmap(nullptr, size_, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd_, 0);
    if (base != MAP_FAILED) base_ = static_cast<const uint8_t*>(base);
  }
  ~MappedFile() {
    if (base_ != nullptr) munmap(const_cast<uint8_t*>(base_), size_);
    if (fd_ >= 0) close(fd_);
  }
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  const uint8_t* data() const { return base_; }
  uint64_t size() const { return size_; }

 private:
  int fd_ = -1;
  uint64_t size_ = 0;
  const uint8_t* base_ = nullptr;
};

class StateSetFile : public ContextWorker {
 public:
  StateSetFile(Napi::Env env, Napi::Object owner, Context* context, int32_t seq, FileSpan span)
      : ContextWorker(env, "llama_state_seq_set_data", owner, context), seq_(seq), span_(std::move(span)) {}

 protected:
  // Codes a caller can tell apart: the file changed or is bad (quarantine it) vs llama.cpp refused.
  void Run() override {
    MappedFile file(span_.path);
    if (file.data() == nullptr) return Fail("ERR_CACHE_FILE_UNREADABLE", "cannot map " + span_.path);
    if (file.size() != span_.fileBytes) return Fail("ERR_CACHE_FILE_CHANGED", "the file's size changed since its header was read");
    uLong crc = crc32_z(0L, file.data() + span_.dataOffset, static_cast<z_size_t>(span_.dataBytes));
    if (static_cast<uint32_t>(crc) != span_.crc32) return Fail("ERR_CACHE_FILE_CHECKSUM", "checksum mismatch");
    read_ = llama_state_seq_set_data(Ctx(), file.data() + span_.stateOffset, span_.stateBytes, seq_);
    if (read_ == 0) Fail("ERR_STATE_IMPORT", "state does not match this context, or no room for it");
  }
  Napi::Value Result() override { return Napi::Number::New(Env(), static_cast<double>(read_)); }

 private:
  int32_t seq_;
  FileSpan span_;
  size_t read_ = 0;
};

// Claims the context first (refusing a second call in flight), releases it if building the worker throws.
template <typename Make>
Napi::Value Launch(Napi::Env env, Context* context, Make make) {
  context->Claim(env);
  PromiseWorker* worker = nullptr;
  try {
    worker = make();
  } catch (...) {
    context->Release();
    throw;
  }
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

}  // namespace

Napi::Value StateSetFileWorker::Start(const Napi::CallbackInfo& info, Context* context, int32_t seq) {
  Napi::Env env = info.Env();
  FileSpan span = ReadSpan(env, info.Length() > 1 ? info[1] : env.Undefined());
  return Launch(env, context, [&]() -> PromiseWorker* {
    return new StateSetFile(env, info.This().As<Napi::Object>(), context, seq, std::move(span));
  });
}

Napi::Value DecodeWorker::Start(const Napi::CallbackInfo& info, Context* context) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsObject()) throw Napi::TypeError::New(env, "decode: batch must be an object");
  if (info.Length() > 1 && !info[1].IsUndefined() && !info[1].IsArray()) {
    throw Napi::TypeError::New(env, "decode: samples must be an array");
  }
  return Launch(env, context, [&]() -> PromiseWorker* {
    auto* worker = new Decode(env, info.This().As<Napi::Object>(), context, info[0].As<Napi::Object>());
    try {
      worker->Validate(env);
      Napi::Array samples = info.Length() > 1 && info[1].IsArray() ? info[1].As<Napi::Array>() : Napi::Array::New(env);
      for (uint32_t i = 0; i < samples.Length(); i++) {
        Napi::Value request = samples.Get(i);
        if (!request.IsObject()) throw Napi::TypeError::New(env, "decode: each sample must be {index, sampler}");
        worker->AddSample(env, request.As<Napi::Object>());
      }
    } catch (...) {
      delete worker;
      throw;
    }
    worker->LendSamplers();
    return worker;
  });
}

Napi::Value StateGetWorker::Start(const Napi::CallbackInfo& info, Context* context, int32_t seq) {
  return Launch(info.Env(), context,
                [&]() -> PromiseWorker* { return new StateGet(info.Env(), info.This().As<Napi::Object>(), context, seq); });
}

Napi::Value StateSetWorker::Start(const Napi::CallbackInfo& info, Context* context, int32_t seq) {
  Napi::Env env = info.Env();
  auto bytes = TypedArrayArg<Napi::Uint8Array>(env, info[1], napi_uint8_array, "stateSeqSet: bytes must be a Uint8Array");
  return Launch(env, context, [&]() -> PromiseWorker* {
    return new StateSet(env, info.This().As<Napi::Object>(), context, seq, bytes);
  });
}

}  // namespace semantic
