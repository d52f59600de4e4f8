// Sampler: one llama.cpp sampler chain per generating sequence (its own seed and penalty history).
#pragma once
#include <llama.h>
#include <napi.h>

#include <vector>

namespace semantic {

class Sampler : public Napi::ObjectWrap<Sampler> {
 public:
  static Napi::Function Define(Napi::Env env);
  static Sampler* FromValue(Napi::Env env, Napi::Value value);

  explicit Sampler(const Napi::CallbackInfo& info);
  ~Sampler() override;

  llama_sampler* Handle(Napi::Env env) const;
  // Samples from the logits of batch index `index` (pool thread; the chain must be lent).
  llama_token Sample(llama_context* ctx, int32_t index);
  // Samples from one row of vocabSize logits, as llama_sampler_sample does from the context's.
  llama_token SampleFrom(const float* logits);
  // A decode in flight samples with this chain on a pool thread; JS must not touch it meanwhile.
  void Lend() { lent_++; }
  void Return() { lent_--; }

 private:
  Napi::Value Accept(const Napi::CallbackInfo& info);
  Napi::Value SampleLogits(const Napi::CallbackInfo& info);
  Napi::Value Reset(const Napi::CallbackInfo& info);
  Napi::Value Dispose(const Napi::CallbackInfo& info);
  void EnsureIdle(Napi::Env env) const;

  llama_sampler* chain_ = nullptr;
  int32_t vocabSize_ = 0;
  // Greedy with no penalties: the argmax of the logits, without building the chain's candidate array.
  bool plainGreedy_ = false;
  std::vector<llama_token_data> candidates_;
  int lent_ = 0;
};

}  // namespace semantic
