// Sampler: one llama.cpp sampler chain per generating sequence (its own seed and penalty history),
// and optionally a GBNF grammar the sampled text must follow (kept beside the chain, see sampler.cc).
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
  void Free();
  llama_token SampleUnconstrained(const float* logits);
  bool GrammarAllows(llama_token token, float logit);
  llama_token SampleWithGrammar(const float* logits);

  llama_sampler* chain_ = nullptr;
  // Outside the chain, as in llama.cpp's common/sampling: the prompt goes to the chain's penalty
  // history only, never to the grammar, which must see nothing but the generated text.
  llama_sampler* grammar_ = nullptr;
  const llama_vocab* vocab_ = nullptr;
  // Keeps the model (and so the vocabulary the grammar reads) alive as long as this sampler.
  Napi::ObjectReference modelRef_;
  int32_t vocabSize_ = 0;
  // Greedy with no penalties: the argmax of the logits, without building the chain's candidate array.
  bool plainGreedy_ = false;
  std::vector<llama_token_data> candidates_;
  int lent_ = 0;
};

}  // namespace semantic
