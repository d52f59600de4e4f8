// Module entry: process-wide llama.cpp set-up (backends, logging) and the exported surface.
// The TS side of this surface is typed in worker/engine/addon.ts; only the inference thread loads it.
#include <ggml-backend.h>
#include <llama.h>
#include <napi.h>

#include <atomic>
#include <cstdio>
#include <mutex>
#include <string>

#include "common.h"
#include "context.h"
#include "model.h"
#include "sampler.h"

namespace semantic {
namespace {

std::once_flag backendsOnce;
std::string backendsDir;
std::atomic<int> logThreshold{GGML_LOG_LEVEL_ERROR};

// Runs on whatever thread ggml logs from: it never calls into JS, it writes to stderr.
void LogToStderr(ggml_log_level level, const char* text, void*) {
  if (level == GGML_LOG_LEVEL_CONT || level < logThreshold.load()) return;
  std::fputs(text, stderr);
}

// loadBackends(dir): registers the CPU variant best for this machine and any GPU backend present.
// Process-wide and idempotent: several inference threads may call it.
Napi::Value LoadBackends(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) throw Napi::TypeError::New(env, "loadBackends: dir must be a string");
  std::string dir = info[0].As<Napi::String>().Utf8Value();
  std::call_once(backendsOnce, [&]() {
    llama_log_set(LogToStderr, nullptr);
    ggml_backend_load_all_from_path(dir.c_str());
    llama_backend_init();
    backendsDir = dir;
  });
  if (backendsDir != dir) ThrowCoded(env, "ERR_BACKENDS", "backends already loaded from " + backendsDir);
  if (ggml_backend_dev_count() == 0) ThrowCoded(env, "ERR_BACKENDS", "no ggml backend could be loaded from " + dir);
  return env.Undefined();
}

const char* DeviceType(enum ggml_backend_dev_type type) {
  switch (type) {
    case GGML_BACKEND_DEVICE_TYPE_CPU: return "cpu";
    case GGML_BACKEND_DEVICE_TYPE_GPU: return "gpu";
    case GGML_BACKEND_DEVICE_TYPE_IGPU: return "igpu";
    default: return "accel";
  }
}

Napi::Value Devices(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Array out = Napi::Array::New(env);
  for (size_t i = 0; i < ggml_backend_dev_count(); i++) {
    ggml_backend_dev_t dev = ggml_backend_dev_get(i);
    size_t free = 0, total = 0;
    ggml_backend_dev_memory(dev, &free, &total);
    Napi::Object d = Napi::Object::New(env);
    d.Set("name", ggml_backend_dev_name(dev));
    d.Set("description", ggml_backend_dev_description(dev));
    d.Set("type", DeviceType(ggml_backend_dev_type(dev)));
    d.Set("memoryFree", static_cast<double>(free));
    d.Set("memoryTotal", static_cast<double>(total));
    out.Set(static_cast<uint32_t>(i), d);
  }
  return out;
}

Napi::Value SetLogLevel(const Napi::CallbackInfo& info) {
  static const char* names[] = {"debug", "info", "warn", "error", "none"};
  static const int levels[] = {GGML_LOG_LEVEL_DEBUG, GGML_LOG_LEVEL_INFO, GGML_LOG_LEVEL_WARN, GGML_LOG_LEVEL_ERROR, 99};
  std::string name = info.Length() > 0 && info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : "";
  for (size_t i = 0; i < 5; i++) {
    if (name == names[i]) {
      logThreshold.store(levels[i]);
      return info.Env().Undefined();
    }
  }
  throw Napi::TypeError::New(info.Env(), "setLogLevel: level must be debug, info, warn, error or none");
}

Napi::Value SystemInfo(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), llama_print_system_info());
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  auto* data = new AddonData();
  Napi::Function model = Model::Define(env);
  Napi::Function context = Context::Define(env);
  Napi::Function sampler = Sampler::Define(env);
  data->model = Napi::Persistent(model);
  data->context = Napi::Persistent(context);
  data->sampler = Napi::Persistent(sampler);
  env.SetInstanceData(data);
  exports.Set("loadBackends", Napi::Function::New(env, LoadBackends));
  exports.Set("devices", Napi::Function::New(env, Devices));
  exports.Set("setLogLevel", Napi::Function::New(env, SetLogLevel));
  exports.Set("systemInfo", Napi::Function::New(env, SystemInfo));
  exports.Set("loadModel", Napi::Function::New(env, Model::Load));
  exports.Set("createContext", Napi::Function::New(env, Context::Create));
  exports.Set("maxParallelSequences", Napi::Number::New(env, static_cast<double>(llama_max_parallel_sequences())));
  exports.Set("Model", model);
  exports.Set("Context", context);
  exports.Set("Sampler", sampler);
  return exports;
}

}  // namespace
}  // namespace semantic

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) { return semantic::Init(env, exports); }

NODE_API_MODULE(semantic_llama, InitAddon)
