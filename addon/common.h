// Shared helpers for the addon: coded errors and the one AsyncWorker base every blocking call uses.
#pragma once
#include <napi.h>

#include <exception>
#include <string>
#include <utility>

namespace semantic {

// JS code matches on `code`, never on the message or the prototype (see shared/errors.ts).
inline Napi::Error CodedError(Napi::Env env, const std::string& code, const std::string& message) {
  Napi::Error error = Napi::Error::New(env, message);
  error.Set("code", Napi::String::New(env, code));
  return error;
}

[[noreturn]] inline void ThrowCoded(Napi::Env env, const std::string& code, const std::string& message) {
  throw CodedError(env, code, message);
}

// Every blocking llama.cpp call runs in one of these: Run() on a libuv pool thread, any C++ exception
// caught and named after the llama function, the promise settled on the JS thread.
class PromiseWorker : public Napi::AsyncWorker {
 public:
  PromiseWorker(Napi::Env env, const char* llamaFunction)
      : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)), function_(llamaFunction) {}

  Napi::Promise Promise() { return deferred_.Promise(); }

 protected:
  virtual void Run() = 0;
  virtual Napi::Value Result() { return Env().Undefined(); }
  // Called on the JS thread whether the call succeeded or not: release busy flags and references here.
  virtual void Settle() {}

  // A worker thread terminated mid-call tears its env down: opening a handle scope then throws, and
  // an exception escaping this libuv callback would abort the whole process. Nothing can be settled
  // any more, so the worker just frees itself.
  void OnWorkComplete(Napi::Env env, napi_status status) override {
    try {
      Napi::AsyncWorker::OnWorkComplete(env, status);
    } catch (...) {
      Destroy();
    }
  }

  void Fail(std::string code, const std::string& message) {
    code_ = std::move(code);
    SetError(std::string(function_) + ": " + message);
  }

 private:
  void Execute() final {
    try {
      Run();
    } catch (const std::exception& e) {
      Fail("ERR_NATIVE", e.what());
    } catch (...) {
      Fail("ERR_NATIVE", "unknown C++ exception");
    }
  }
  void OnOK() final {
    Settle();
    deferred_.Resolve(Result());
  }
  void OnError(const Napi::Error& error) final {
    Settle();
    deferred_.Reject(CodedError(Env(), code_.empty() ? "ERR_NATIVE" : code_, error.Message()).Value());
  }

  Napi::Promise::Deferred deferred_;
  const char* function_;
  std::string code_;
};

inline int32_t OptionalInt(const Napi::Object& options, const char* key, int32_t fallback) {
  Napi::Value value = options.Get(key);
  if (value.IsUndefined()) return fallback;
  if (!value.IsNumber()) throw Napi::TypeError::New(options.Env(), std::string(key) + " must be a number");
  return value.As<Napi::Number>().Int32Value();
}

inline double OptionalDouble(const Napi::Object& options, const char* key, double fallback) {
  Napi::Value value = options.Get(key);
  if (value.IsUndefined()) return fallback;
  if (!value.IsNumber()) throw Napi::TypeError::New(options.Env(), std::string(key) + " must be a number");
  return value.As<Napi::Number>().DoubleValue();
}

inline bool OptionalBool(const Napi::Object& options, const char* key, bool fallback) {
  Napi::Value value = options.Get(key);
  if (value.IsUndefined()) return fallback;
  if (!value.IsBoolean()) throw Napi::TypeError::New(options.Env(), std::string(key) + " must be a boolean");
  return value.As<Napi::Boolean>().Value();
}

inline Napi::Object OptionsArg(const Napi::CallbackInfo& info, size_t index) {
  if (info.Length() <= index || info[index].IsUndefined()) return Napi::Object::New(info.Env());
  if (!info[index].IsObject()) throw Napi::TypeError::New(info.Env(), "options must be an object");
  return info[index].As<Napi::Object>();
}

// A typed array of the expected element type, or a JS TypeError with `message` (never a crash).
template <typename Array>
Array TypedArrayArg(Napi::Env env, Napi::Value value, napi_typedarray_type type, const std::string& message) {
  if (!value.IsTypedArray() || value.As<Napi::TypedArray>().TypedArrayType() != type) throw Napi::TypeError::New(env, message);
  return value.As<Array>();
}

// Token ids (an Int32Array), each checked against the vocabulary; errors start with `what`.
inline Napi::Int32Array TokensArg(Napi::Env env, Napi::Value value, int32_t nVocab, const std::string& what) {
  auto tokens = TypedArrayArg<Napi::Int32Array>(env, value, napi_int32_array, what + ": tokens must be an Int32Array");
  for (size_t i = 0; i < tokens.ElementLength(); i++) {
    if (tokens[i] < 0 || tokens[i] >= nVocab) throw Napi::RangeError::New(env, what + ": token outside the vocabulary");
  }
  return tokens;
}

// Class constructors live in the addon's instance data, so several worker threads each get their own.
struct AddonData {
  Napi::FunctionReference model;
  Napi::FunctionReference context;
  Napi::FunctionReference sampler;
};

// Unwraps `value` as an instance of one of our classes, refusing look-alikes (a JS TypeError, not UB).
template <typename T>
T* UnwrapInstance(Napi::Env env, Napi::Value value, Napi::FunctionReference AddonData::*constructor,
                  const char* name) {
  Napi::Function ctor = (env.GetInstanceData<AddonData>()->*constructor).Value();
  if (!value.IsObject() || !value.As<Napi::Object>().InstanceOf(ctor)) {
    throw Napi::TypeError::New(env, std::string("expected a ") + name);
  }
  return Napi::ObjectWrap<T>::Unwrap(value.As<Napi::Object>());
}

}  // namespace semantic
