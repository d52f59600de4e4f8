#include "model.h"

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "common.h"

namespace semantic {
namespace {

class LoadModelWorker : public PromiseWorker {
 public:
  LoadModelWorker(Napi::Env env, std::string path, int32_t gpuLayers, bool vocabOnly)
      : PromiseWorker(env, "llama_model_load_from_file"), path_(std::move(path)), gpuLayers_(gpuLayers), vocabOnly_(vocabOnly) {}

 protected:
  void Run() override {
    llama_model_params params = llama_model_default_params();
    params.n_gpu_layers = gpuLayers_;
    params.vocab_only = vocabOnly_;
    model_ = llama_model_load_from_file(path_.c_str(), params);
    if (model_ == nullptr) Fail("ERR_MODEL_LOAD", "cannot load model from " + path_);
  }
  Napi::Value Result() override {
    Napi::Env env = Env();
    Napi::Value model = env.GetInstanceData<AddonData>()->model.New({Napi::External<llama_model>::New(env, model_)});
    model_ = nullptr;
    return model;
  }

 private:
  std::string path_;
  int32_t gpuLayers_;
  bool vocabOnly_;
  llama_model* model_ = nullptr;
};

std::string MetaString(const llama_model* model, const char* key) {
  std::vector<char> buf(256);
  int32_t n = llama_model_meta_val_str(model, key, buf.data(), buf.size());
  if (n < 0) return "";
  if (static_cast<size_t>(n) >= buf.size()) {
    buf.resize(n + 1);
    llama_model_meta_val_str(model, key, buf.data(), buf.size());
  }
  return std::string(buf.data(), n);
}

}  // namespace

Napi::Function Model::Define(Napi::Env env) {
  return DefineClass(env, "Model",
                     {InstanceMethod<&Model::Info>("info"), InstanceMethod<&Model::Tokenize>("tokenize"),
                      InstanceMethod<&Model::TokenizerCache>("tokenizerCache"),
                      InstanceMethod<&Model::Detokenize>("detokenize"),
                      InstanceMethod<&Model::TokenToPiece>("tokenToPiece"), InstanceMethod<&Model::IsEog>("isEog"),
                      InstanceMethod<&Model::Dispose>("dispose")});
}

Napi::Value Model::Load(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) throw Napi::TypeError::New(env, "loadModel: path must be a string");
  Napi::Object options = OptionsArg(info, 1);
  auto* worker = new LoadModelWorker(env, info[0].As<Napi::String>().Utf8Value(), OptionalInt(options, "gpuLayers", 0),
                                     OptionalBool(options, "vocabOnly", false));
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

Model* Model::FromValue(Napi::Env env, Napi::Value value) {
  return UnwrapInstance<Model>(env, value, &AddonData::model, "Model");
}

Model::Model(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Model>(info) {
  if (info.Length() < 1 || !info[0].IsExternal()) {
    throw Napi::TypeError::New(info.Env(), "Model cannot be constructed directly: use loadModel()");
  }
  model_ = info[0].As<Napi::External<llama_model>>().Data();
  vocab_ = llama_model_get_vocab(model_);
}

Model::~Model() {
  if (model_ != nullptr) llama_model_free(model_);
}

llama_model* Model::Handle(Napi::Env env) const {
  if (model_ == nullptr) ThrowCoded(env, "ERR_DISPOSED", "model is disposed");
  return model_;
}

Napi::Value Model::Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  llama_model* model = Handle(env);
  Napi::Object out = Napi::Object::New(env);
  const char* tmpl = llama_model_chat_template(model, nullptr);
  char desc[256];
  llama_model_desc(model, desc, sizeof(desc));
  out.Set("architecture", MetaString(model, "general.architecture"));
  out.Set("name", MetaString(model, "general.name"));
  out.Set("description", std::string(desc));
  out.Set("contextLength", llama_model_n_ctx_train(model));
  out.Set("vocabSize", llama_vocab_n_tokens(vocab_));
  out.Set("embeddingLength", llama_model_n_embd(model));
  out.Set("layerCount", llama_model_n_layer(model));
  // A vocab-only model has no layers, and llama.cpp aborts when asked for the heads of layer 0.
  bool layers = llama_model_n_layer(model) > 0;
  out.Set("headCount", layers ? llama_model_n_head(model) : 0);
  out.Set("headCountKv", layers ? llama_model_n_head_kv(model) : 0);
  out.Set("sizeBytes", static_cast<double>(llama_model_size(model)));
  out.Set("parameterCount", static_cast<double>(llama_model_n_params(model)));
  out.Set("bos", llama_vocab_bos(vocab_));
  out.Set("eos", llama_vocab_eos(vocab_));
  out.Set("eot", llama_vocab_eot(vocab_));
  out.Set("addBos", llama_vocab_get_add_bos(vocab_));
  out.Set("chatTemplate", tmpl == nullptr ? env.Null() : Napi::String::New(env, tmpl));
  return out;
}

llama_token Model::TokenArg(const Napi::CallbackInfo& info, size_t index) const {
  if (info.Length() <= index || !info[index].IsNumber()) throw Napi::TypeError::New(info.Env(), "token must be a number");
  int32_t token = info[index].As<Napi::Number>().Int32Value();
  if (token < 0 || token >= llama_vocab_n_tokens(vocab_)) {
    throw Napi::RangeError::New(info.Env(), "token " + std::to_string(token) + " is outside the vocabulary");
  }
  return token;
}

Napi::Value Model::Tokenize(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Handle(env);
  if (info.Length() < 1 || !info[0].IsString()) throw Napi::TypeError::New(env, "tokenize: text must be a string");
  std::string text = info[0].As<Napi::String>().Utf8Value();
  Napi::Object options = OptionsArg(info, 1);
  bool addSpecial = OptionalBool(options, "addSpecial", false);
  bool parseSpecial = OptionalBool(options, "parseSpecial", false);
  std::vector<llama_token> tokens;
  if (parseSpecial && OptionalBool(options, "cache", true) && Fragments().Supported()) {
    try {
      tokens = Fragments().Tokenize(text, addSpecial);
    } catch (const std::length_error& error) {
      ThrowCoded(env, "ERR_TOKENIZE", error.what());
    }
  } else {
    tokens = TokenizeUncached(env, text, addSpecial, parseSpecial);
  }
  Napi::Int32Array out = Napi::Int32Array::New(env, tokens.size());
  std::copy(tokens.begin(), tokens.end(), out.Data());
  return out;
}

std::vector<llama_token> Model::TokenizeUncached(Napi::Env env, const std::string& text, bool addSpecial, bool parseSpecial) const {
  std::vector<llama_token> tokens(text.size() + 8);
  int32_t n = llama_tokenize(vocab_, text.data(), text.size(), tokens.data(), tokens.size(), addSpecial, parseSpecial);
  if (n < 0) {
    if (n == INT32_MIN) ThrowCoded(env, "ERR_TOKENIZE", "llama_tokenize: result too large");
    tokens.resize(-n);
    n = llama_tokenize(vocab_, text.data(), text.size(), tokens.data(), tokens.size(), addSpecial, parseSpecial);
  }
  tokens.resize(n);
  return tokens;
}

Napi::Value Model::TokenizerCache(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Handle(env);
  Napi::Object out = Napi::Object::New(env);
  out.Set("entries", Napi::Number::New(env, fragments_ ? fragments_->Entries() : 0));
  out.Set("bytes", Napi::Number::New(env, fragments_ ? fragments_->Bytes() : 0));
  return out;
}

// Built on first use: it scans the whole vocabulary once for its special tokens.
FragmentTokenizer& Model::Fragments() {
  if (!fragments_) fragments_ = std::make_unique<FragmentTokenizer>(vocab_);
  return *fragments_;
}

Napi::Value Model::Detokenize(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Handle(env);
  Napi::Int32Array tokens = TokensArg(env, info[0], llama_vocab_n_tokens(vocab_), "detokenize");
  bool special = OptionalBool(OptionsArg(info, 1), "special", false);
  std::vector<char> text(tokens.ElementLength() * 8 + 16);
  int32_t n = llama_detokenize(vocab_, tokens.Data(), tokens.ElementLength(), text.data(), text.size(), false, special);
  if (n < 0) {
    text.resize(-n);
    n = llama_detokenize(vocab_, tokens.Data(), tokens.ElementLength(), text.data(), text.size(), false, special);
  }
  return Napi::String::New(env, text.data(), n);
}

// Bytes, not a string: one token can hold part of a UTF-8 character; JS decodes with a streaming decoder.
Napi::Value Model::TokenToPiece(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Handle(env);
  llama_token token = TokenArg(info, 0);
  bool special = OptionalBool(OptionsArg(info, 1), "special", false);
  char buf[256];
  int32_t n = llama_token_to_piece(vocab_, token, buf, sizeof(buf), 0, special);
  if (n < 0) ThrowCoded(env, "ERR_TOKENIZE", "llama_token_to_piece: piece longer than 256 bytes");
  return Napi::Buffer<char>::Copy(env, buf, n);
}

Napi::Value Model::IsEog(const Napi::CallbackInfo& info) {
  Handle(info.Env());
  return Napi::Boolean::New(info.Env(), llama_vocab_is_eog(vocab_, TokenArg(info, 0)));
}

Napi::Value Model::Dispose(const Napi::CallbackInfo& info) {
  if (contexts_ > 0) ThrowCoded(info.Env(), "ERR_BUSY", "model still has live contexts: dispose them first");
  if (model_ != nullptr) llama_model_free(model_);
  model_ = nullptr;
  return info.Env().Undefined();
}

}  // namespace semantic
