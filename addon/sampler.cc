#include "sampler.h"

#include <cmath>
#include <string>

#include "common.h"
#include "model.h"

namespace semantic {
namespace {

struct SamplingOptions {
  double temperature, topP, minP, repeatPenalty, frequencyPenalty, presencePenalty;
  int32_t topK, penaltyLastN;
  uint32_t seed;
};

SamplingOptions ReadOptions(Napi::Env env, const Napi::Object& options) {
  SamplingOptions o{};
  o.temperature = OptionalDouble(options, "temperature", 0.8);
  o.topP = OptionalDouble(options, "topP", 1.0);
  o.minP = OptionalDouble(options, "minP", 0.0);
  o.topK = OptionalInt(options, "topK", 0);
  o.repeatPenalty = OptionalDouble(options, "repeatPenalty", 1.0);
  o.frequencyPenalty = OptionalDouble(options, "frequencyPenalty", 0.0);
  o.presencePenalty = OptionalDouble(options, "presencePenalty", 0.0);
  o.penaltyLastN = OptionalInt(options, "penaltyLastN", 64);
  o.seed = static_cast<uint32_t>(OptionalDouble(options, "seed", LLAMA_DEFAULT_SEED));
  auto check = [&](bool ok, const char* what) {
    if (!ok) throw Napi::RangeError::New(env, std::string("sampler: ") + what);
  };
  check(std::isfinite(o.temperature) && o.temperature >= 0, "temperature must be >= 0");
  check(o.topP > 0 && o.topP <= 1, "topP must be in (0, 1]");
  check(o.minP >= 0 && o.minP <= 1, "minP must be in [0, 1]");
  check(o.topK >= 0, "topK must be >= 0");
  check(std::isfinite(o.repeatPenalty) && o.repeatPenalty > 0, "repeatPenalty must be > 0");
  check(std::isfinite(o.frequencyPenalty) && std::isfinite(o.presencePenalty), "penalties must be finite");
  check(o.penaltyLastN >= -1, "penaltyLastN must be >= -1");
  return o;
}

// Order as llama-server's default chain: penalties, top-k, top-p, min-p, temperature, then the draw.
llama_sampler* BuildChain(const SamplingOptions& o, int32_t vocabSize) {
  llama_sampler* chain = llama_sampler_chain_init(llama_sampler_chain_default_params());
  if (o.repeatPenalty != 1.0 || o.frequencyPenalty != 0.0 || o.presencePenalty != 0.0) {
    llama_sampler_chain_add(chain, llama_sampler_init_penalties(vocabSize, o.penaltyLastN, o.repeatPenalty, o.frequencyPenalty,
                                                                o.presencePenalty));
  }
  if (o.temperature <= 0) {
    llama_sampler_chain_add(chain, llama_sampler_init_greedy());
    return chain;
  }
  if (o.topK > 0) llama_sampler_chain_add(chain, llama_sampler_init_top_k(o.topK));
  if (o.topP < 1) llama_sampler_chain_add(chain, llama_sampler_init_top_p(o.topP, 1));
  if (o.minP > 0) llama_sampler_chain_add(chain, llama_sampler_init_min_p(o.minP, 1));
  llama_sampler_chain_add(chain, llama_sampler_init_temp(o.temperature));
  llama_sampler_chain_add(chain, llama_sampler_init_dist(o.seed));
  return chain;
}

// options.grammar: GBNF text with a `root` rule; absent means unconstrained. llama.cpp answers NULL
// for text its parser refuses (and logs why); that is a JS Error here, never a crash.
llama_sampler* BuildGrammar(Napi::Env env, const llama_vocab* vocab, const Napi::Object& options) {
  Napi::Value value = options.Get("grammar");
  if (value.IsUndefined()) return nullptr;
  if (!value.IsString()) throw Napi::TypeError::New(env, "sampler: grammar must be a string");
  std::string text = value.As<Napi::String>().Utf8Value();
  llama_sampler* grammar = nullptr;
  try {
    grammar = llama_sampler_init_grammar(vocab, text.c_str(), "root");
  } catch (const std::exception& e) {
    throw CodedError(env, "ERR_GRAMMAR", std::string("sampler: the grammar is invalid: ") + e.what());
  }
  if (grammar == nullptr) ThrowCoded(env, "ERR_GRAMMAR", "sampler: the grammar is invalid (llama.cpp's parser refused it)");
  return grammar;
}

}  // namespace

Napi::Function Sampler::Define(Napi::Env env) {
  return DefineClass(env, "Sampler",
                     {InstanceMethod<&Sampler::Accept>("accept"), InstanceMethod<&Sampler::SampleLogits>("sampleLogits"),
                      InstanceMethod<&Sampler::Reset>("reset"),
                      InstanceMethod<&Sampler::Dispose>("dispose")});
}

Sampler* Sampler::FromValue(Napi::Env env, Napi::Value value) {
  return UnwrapInstance<Sampler>(env, value, &AddonData::sampler, "Sampler");
}

// new Sampler(model, options)
Sampler::Sampler(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Sampler>(info) {
  Napi::Env env = info.Env();
  Model* model = Model::FromValue(env, info.Length() > 0 ? info[0] : env.Undefined());
  model->Handle(env);
  vocabSize_ = llama_vocab_n_tokens(model->Vocab());
  vocab_ = model->Vocab();
  modelRef_ = Napi::Persistent(info[0].As<Napi::Object>());
  Napi::Object optionsArg = OptionsArg(info, 1);
  SamplingOptions options = ReadOptions(env, optionsArg);
  grammar_ = BuildGrammar(env, vocab_, optionsArg);
  chain_ = BuildChain(options, vocabSize_);
  plainGreedy_ = options.temperature <= 0 && options.repeatPenalty == 1.0 && options.frequencyPenalty == 0.0 &&
                 options.presencePenalty == 0.0;
}

// llama_sampler_sample fills a candidate array of the whole vocabulary (152K entries for Qwen) for
// every sequence at every step: with 32 sequences that is ~8% of a CPU decode step. A plain greedy
// chain only needs the argmax; the first maximum wins, as in llama.cpp's greedy sampler.
llama_token Sampler::Sample(llama_context* ctx, int32_t index) {
  const float* logits = llama_get_logits_ith(ctx, index);
  if (logits == nullptr) return llama_sampler_sample(chain_, ctx, index);
  return SampleFrom(logits);
}

llama_token Sampler::SampleFrom(const float* logits) {
  llama_token token = SampleUnconstrained(logits);
  if (grammar_ != nullptr && !GrammarAllows(token, logits[token])) token = SampleWithGrammar(logits);
  if (grammar_ != nullptr) llama_sampler_accept(grammar_, token);
  llama_sampler_accept(chain_, token);
  return token;
}

// The chain's choice over the whole vocabulary, not yet accepted.
llama_token Sampler::SampleUnconstrained(const float* logits) {
  if (plainGreedy_) {
    llama_token best = 0;
    for (llama_token token = 1; token < vocabSize_; token++) {
      if (logits[token] > logits[best]) best = token;
    }
    return best;
  }
  candidates_.resize(vocabSize_);
  for (llama_token token = 0; token < vocabSize_; token++) candidates_[token] = llama_token_data{token, logits[token], 0.0f};
  llama_token_data_array candidates{candidates_.data(), candidates_.size(), -1, false};
  llama_sampler_apply(chain_, &candidates);
  return candidates.data[candidates.selected].id;
}

// Checking one token against the grammar is far cheaper than masking the whole vocabulary, and the
// unconstrained choice usually fits (llama.cpp's common_sampler_sample does the same).
bool Sampler::GrammarAllows(llama_token token, float logit) {
  llama_token_data single{token, logit, 0.0f};
  llama_token_data_array one{&single, 1, -1, false};
  llama_sampler_apply(grammar_, &one);
  return std::isfinite(single.logit);
}

// The grammar masks the vocabulary, then the chain picks among what is left. When nothing is left
// (a grammar the vocabulary cannot complete) the answer is end of generation: accepting a token the
// grammar refused would abort the process inside llama.cpp.
llama_token Sampler::SampleWithGrammar(const float* logits) {
  candidates_.resize(vocabSize_);
  for (llama_token token = 0; token < vocabSize_; token++) candidates_[token] = llama_token_data{token, logits[token], 0.0f};
  llama_token_data_array candidates{candidates_.data(), candidates_.size(), -1, false};
  llama_sampler_apply(grammar_, &candidates);
  bool anyAllowed = false;
  for (size_t i = 0; i < candidates.size && !anyAllowed; i++) anyAllowed = std::isfinite(candidates.data[i].logit);
  if (!anyAllowed) {
    llama_sampler_free(grammar_);
    grammar_ = nullptr;
    llama_token eos = llama_vocab_eos(vocab_);
    return eos != LLAMA_TOKEN_NULL ? eos : llama_vocab_eot(vocab_);
  }
  llama_sampler_apply(chain_, &candidates);
  return candidates.data[candidates.selected].id;
}

// sampleLogits(Float32Array): a token from logits saved earlier (a cached turn's last row), so a
// request whose whole prompt is cached needs no decode before its first token.
Napi::Value Sampler::SampleLogits(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  EnsureIdle(env);
  auto logits = TypedArrayArg<Napi::Float32Array>(env, info[0], napi_float32_array, "sampleLogits: logits must be a Float32Array");
  if (logits.ElementLength() != static_cast<size_t>(vocabSize_)) {
    throw Napi::RangeError::New(env, "sampleLogits: expected " + std::to_string(vocabSize_) + " logits, got " +
                                         std::to_string(logits.ElementLength()));
  }
  return Napi::Number::New(env, SampleFrom(logits.Data()));
}

Sampler::~Sampler() { Free(); }

void Sampler::Free() {
  if (chain_ != nullptr) llama_sampler_free(chain_);
  if (grammar_ != nullptr) llama_sampler_free(grammar_);
  chain_ = nullptr;
  grammar_ = nullptr;
}

llama_sampler* Sampler::Handle(Napi::Env env) const {
  if (chain_ == nullptr) ThrowCoded(env, "ERR_DISPOSED", "sampler is disposed");
  return chain_;
}

void Sampler::EnsureIdle(Napi::Env env) const {
  Handle(env);
  if (lent_ > 0) ThrowCoded(env, "ERR_BUSY", "sampler is in use by a decode in flight");
}

// Feeds prompt tokens to the penalty history, as llama-server does before generating. Not to the
// grammar: it constrains the generated text only.
Napi::Value Sampler::Accept(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  EnsureIdle(env);
  Napi::Int32Array tokens = TokensArg(env, info[0], vocabSize_, "accept");
  for (size_t i = 0; i < tokens.ElementLength(); i++) llama_sampler_accept(chain_, tokens[i]);
  return env.Undefined();
}

Napi::Value Sampler::Reset(const Napi::CallbackInfo& info) {
  EnsureIdle(info.Env());
  llama_sampler_reset(chain_);
  if (grammar_ != nullptr) llama_sampler_reset(grammar_);
  return info.Env().Undefined();
}

Napi::Value Sampler::Dispose(const Napi::CallbackInfo& info) {
  if (lent_ > 0) ThrowCoded(info.Env(), "ERR_BUSY", "sampler is in use by a decode in flight");
  Free();
  return info.Env().Undefined();
}

}  // namespace semantic
