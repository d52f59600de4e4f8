{
  # deps/llama-libs.gypi is written at install time by addon/extract-llama-source.mjs: the llama.cpp
  # headers (from node-llama-cpp's source bundle, addon/llama-source.mjs) and the matching prebuilt
  # libraries to link.
  "includes": ["deps/llama-libs.gypi"],
  "targets": [
    {
      "target_name": "semantic_llama",
      "sources": ["addon/addon.cc", "addon/model.cc", "addon/fragment-tokenizer.cc", "addon/context.cc", "addon/sampler.cc", "addon/workers.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")", "<@(llama_include_dirs)"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions"],
      "cflags_cc": ["-std=c++17", "-fexceptions", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "libraries": ["<@(llama_libraries)", "-Wl,-rpath,<(llama_lib_dir)"],
      "xcode_settings": {
        "GCC_ENABLE_CPP_EXCEPTIONS": "YES",
        "CLANG_CXX_LANGUAGE_STANDARD": "c++17",
        "OTHER_LDFLAGS": ["-Wl,-rpath,<(llama_lib_dir)"]
      }
    }
  ]
}
