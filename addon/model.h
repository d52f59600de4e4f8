// Model: a loaded GGUF (weights + vocabulary). Loading is async; tokenizer calls are sync and cheap.
#pragma once
#include <llama.h>
#include <napi.h>

#include <memory>
#include <string>
#include <vector>

#include "fragment-tokenizer.h"

namespace semantic {

class Model : public Napi::ObjectWrap<Model> {
 public:
  static Napi::Function Define(Napi::Env env);
  static Napi::Value Load(const Napi::CallbackInfo& info);  // loadModel(path, options) -> Promise<Model>
  static Model* FromValue(Napi::Env env, Napi::Value value);

  explicit Model(const Napi::CallbackInfo& info);
  ~Model() override;

  llama_model* Handle(Napi::Env env) const;
  const llama_vocab* Vocab() const { return vocab_; }
  void AddContext() { contexts_++; }
  void RemoveContext() { contexts_--; }

 private:
  Napi::Value Info(const Napi::CallbackInfo& info);
  Napi::Value Tokenize(const Napi::CallbackInfo& info);
  Napi::Value TokenizerCache(const Napi::CallbackInfo& info);
  Napi::Value Detokenize(const Napi::CallbackInfo& info);
  Napi::Value TokenToPiece(const Napi::CallbackInfo& info);
  Napi::Value IsEog(const Napi::CallbackInfo& info);
  Napi::Value Dispose(const Napi::CallbackInfo& info);

  llama_token TokenArg(const Napi::CallbackInfo& info, size_t index) const;
  std::vector<llama_token> TokenizeUncached(Napi::Env env, const std::string& text, bool addSpecial, bool parseSpecial) const;
  FragmentTokenizer& Fragments();

  llama_model* model_ = nullptr;
  const llama_vocab* vocab_ = nullptr;
  int contexts_ = 0;
  std::unique_ptr<FragmentTokenizer> fragments_;
};

}  // namespace semantic
