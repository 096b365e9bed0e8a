// How the server runs a model, read from the model's config.json next to what the model itself
// reads: the batching policy of vision models and the generation limits of language models.
//
//   "batching":   {"max_batch_size": 8, "max_queue_delay_ms": 0, "max_queue_size": 256,
//                  "low_priority_max_wait_ms": 100}
//   "instances":  {"count": 2, "threads": 1,       (vision models; default from the cores)
//                  "lend_idle_threads": true}
//   "generation": {"max_running": 16, "max_waiting": 4096, "max_cache_mb": 512,
//                  "default_max_new_tokens": 64, "max_new_tokens_limit": 1024}
//   "input_form": "image" | "pixels" | "tensor"   (vision models; default "image")
//   "warmup":     {"enabled": true, "batch_sizes": [1, 8],   (default: powers of two up to
//                  "input": "warmup.png"}                      max_batch_size / max_running)
//                 input: an image (vision) or a text prompt (language) in the model directory;
//                 default: a synthetic one
//
// Every default is here; model/config/config_schema.cc lists the keys, and unknown ones are refused.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "absl/status/statusor.h"
#include "server/batching/dynamic_batcher.h"
#include "server/generation/generation_scheduler.h"

namespace elliptical::server {

// Server-wide settings that replace every model's own (flags); unset fields keep the model's.
struct ServingOverrides {
  int max_batch_size = 0;         // 0: keep
  int max_queue_delay_us = -1;    // < 0: keep
  int max_running_sequences = 0;  // 0: keep
  int instances = 0;              // 0: keep
  int cpu_threads = 0;            // threads all instances of a model share; 0: one per core
};

// Model instances (Triton's instance groups): executors fed by the model's one batcher.
struct InstanceOptions {
  int count = 1;
  int threads = 0;  // intra-op threads of each; 0: LibTorch's default
  // A batch that computes alone (no other instance busy, nothing queued) uses the threads of
  // every instance, so a lone client gets every core; under load each keeps its own.
  bool lend_idle_threads = true;
};

// The one input a vision model's metadata lists (the Open Inference Protocol's
// GetModelMetadata): a generic client fills every input listed, so exactly one is. Requests
// may still name any of them: this chooses what is advertised, not what is accepted.
enum class InputForm {
  kImage,   // encoded PNG or JPEG files; the server decodes, resizes and normalises
  kPixels,  // decoded 8-bit pixels; the server resizes and normalises
  kTensor,  // the model's own input, resized and normalised by the client
};
// "image", "pixels", "tensor": the config value, and the protocol's input name. Inline: the
// protocols' light mapping libraries name it without linking the repository.
inline const char* InputFormName(InputForm form) {
  switch (form) {
    case InputForm::kImage: return "image";
    case InputForm::kPixels: return "pixels";
    case InputForm::kTensor: return "tensor";
  }
  return "image";
}

// What a version runs before it turns READY (servable_registry.h).
struct WarmupConfig {
  bool enabled = true;
  std::vector<int> batch_sizes;  // empty: the default buckets
  std::string input;             // a file in the model directory; empty: synthetic
};

struct ServingConfig {
  BatchingOptions batching;
  InstanceOptions instances;
  GenerationLimits generation;
  InputForm input_form = InputForm::kImage;
  WarmupConfig warmup;
};

absl::StatusOr<ServingConfig> ParseServingConfig(const nlohmann::json& config,
                                                 const ServingOverrides& overrides);

// The batch sizes a warm-up runs: the configured ones, else 1, 2, 4, ... below `most`, and
// `most` (a batch of any size then finds its shapes' kernels chosen within a factor of two).
std::vector<int> WarmupBatchSizes(const WarmupConfig& warmup, int most);

}  // namespace elliptical::server
