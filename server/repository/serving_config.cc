#include "server/repository/serving_config.h"

#include <algorithm>
#include <thread>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"

namespace elliptical::server {

namespace {

absl::StatusOr<InputForm> ParseInputForm(const nlohmann::json& config) {
  auto it = config.find("input_form");
  if (it == config.end()) return InputForm::kImage;
  constexpr char kAllowed[] = "\"input_form\" must be \"image\", \"pixels\" or \"tensor\"";
  const auto family = config.find("family");
  if (family != config.end() && *family == "language_model") return absl::InvalidArgumentError("\"input_form\" applies to vision models, not language models");
  if (!it->is_string()) {
    std::string shown = it->dump();
    if (shown.size() > 40) shown = shown.substr(0, 37) + "...";
    return absl::InvalidArgumentError(absl::StrCat(kAllowed, ", not ", shown));
  }
  for (InputForm form : {InputForm::kImage, InputForm::kPixels, InputForm::kTensor}) {
    if (it->get<std::string>() == InputFormName(form)) return form;
  }
  std::string shown = it->get<std::string>();
  if (shown.size() > 40) shown = shown.substr(0, 37) + "...";
  return absl::InvalidArgumentError(absl::StrCat(kAllowed, ", not \"", shown, "\""));
}

}  // namespace

absl::StatusOr<ServingConfig> ParseServingConfig(const nlohmann::json& config,
                                                 const ServingOverrides& overrides) {
  ServingConfig out;
  auto form = ParseInputForm(config);
  if (!form.ok()) return form.status();
  out.input_form = *form;
  try {
    const nlohmann::json b = config.value("batching", nlohmann::json::object());
    const nlohmann::json g = config.value("generation", nlohmann::json::object());
    out.batching.max_batch_size = b.value("max_batch_size", out.batching.max_batch_size);
    out.batching.max_queue_delay =
        absl::Microseconds(b.value("max_queue_delay_ms", 0.0) * 1000.0);
    out.batching.max_queued_items = b.value("max_queue_size", out.batching.max_queued_items);
    out.batching.max_priority_wait =
        absl::Microseconds(b.value("low_priority_max_wait_ms", 100.0) * 1000.0);
    const nlohmann::json inst = config.value("instances", nlohmann::json::object());
    out.instances.count = inst.value("count", 0);
    out.instances.threads = inst.value("threads", 0);
    out.instances.lend_idle_threads = inst.value("lend_idle_threads", true);
    GenerationLimits& l = out.generation;
    l.max_running = g.value("max_running", l.max_running);
    l.max_waiting = g.value("max_waiting", l.max_waiting);
    l.max_cache_bytes = static_cast<int64_t>(g.value("max_cache_mb", 512.0) * (1 << 20));
    l.default_max_new_tokens = g.value("default_max_new_tokens", l.default_max_new_tokens);
    l.max_new_tokens_limit = g.value("max_new_tokens_limit", l.max_new_tokens_limit);
    const nlohmann::json w = config.value("warmup", nlohmann::json::object());
    out.warmup.enabled = w.value("enabled", true);
    out.warmup.batch_sizes = w.value("batch_sizes", std::vector<int>{});
    out.warmup.input = w.value("input", std::string());
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("batching/generation settings: ", e.what()));
  }
  if (overrides.max_batch_size > 0) out.batching.max_batch_size = overrides.max_batch_size;
  if (overrides.max_queue_delay_us >= 0) {
    out.batching.max_queue_delay = absl::Microseconds(overrides.max_queue_delay_us);
  }
  if (overrides.max_running_sequences > 0) out.generation.max_running = overrides.max_running_sequences;
  if (overrides.instances > 0) out.instances.count = overrides.instances;
  // Default: two instances once there are two cores, each with its share of them: a forward
  // of a small ViT does not scale to every core, while two forwards side by side keep both busy.
  const int cores = overrides.cpu_threads > 0
                        ? overrides.cpu_threads
                        : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  if (out.instances.count == 0) out.instances.count = cores >= 2 ? 2 : 1;
  if (out.instances.threads == 0) out.instances.threads = std::max(1, cores / out.instances.count);
  if (out.instances.count < 1 || out.instances.count > 64 || out.instances.threads < 0 ||
      out.instances.threads > 1024) {
    return absl::InvalidArgumentError("instances: count must be 1 to 64 and threads 0 to 1024");
  }
  const BatchingOptions& b = out.batching;
  const GenerationLimits& l = out.generation;
  if (b.max_batch_size < 1 || b.max_queued_items < 1 || b.max_queue_delay < absl::ZeroDuration() ||
      b.max_priority_wait < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        "batching: max_batch_size and max_queue_size must be positive, max_queue_delay_ms and "
        "low_priority_max_wait_ms >= 0");
  }
  if (l.max_running < 1 || l.max_waiting < 1 || l.max_cache_bytes < 1 || l.default_max_new_tokens < 1 ||
      l.max_new_tokens_limit < l.default_max_new_tokens) {
    return absl::InvalidArgumentError(
        "generation: max_running, max_waiting, max_cache_mb, default_max_new_tokens must be positive "
        "and max_new_tokens_limit at least default_max_new_tokens");
  }
  const int most = config.value("family", "") == "language_model" ? l.max_running : b.max_batch_size;
  if (out.warmup.batch_sizes.size() > 16) {
    return absl::InvalidArgumentError("warmup.batch_sizes: at most 16 sizes");
  }
  for (int size : out.warmup.batch_sizes) {
    if (size < 1 || size > most) {
      return absl::InvalidArgumentError(absl::StrCat("warmup.batch_sizes: ", size, " is not from 1 to ", most,
                                                     " (the model's max_batch_size, or generation.max_running)"));
    }
  }
  if (out.warmup.input.find("..") != std::string::npos || (!out.warmup.input.empty() && out.warmup.input[0] == '/')) {
    return absl::InvalidArgumentError("warmup.input: a file within the model directory (no \"..\", not absolute)");
  }
  return out;
}

std::vector<int> WarmupBatchSizes(const WarmupConfig& warmup, int most) {
  if (!warmup.batch_sizes.empty()) return warmup.batch_sizes;
  std::vector<int> sizes;
  for (int b = 1; b < most; b *= 2) sizes.push_back(b);
  sizes.push_back(most);
  return sizes;
}

}  // namespace elliptical::server
