#include "server/repository/serving_config.h"

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"

namespace elliptical::server {

absl::StatusOr<ServingConfig> ParseServingConfig(const nlohmann::json& config,
                                                 const ServingOverrides& overrides) {
  ServingConfig out;
  try {
    const nlohmann::json b = config.value("batching", nlohmann::json::object());
    const nlohmann::json g = config.value("generation", nlohmann::json::object());
    out.batching.max_batch_size = b.value("max_batch_size", out.batching.max_batch_size);
    out.batching.max_queue_delay =
        absl::Microseconds(b.value("max_queue_delay_ms", 2.0) * 1000.0);
    out.batching.max_queued_items = b.value("max_queue_size", out.batching.max_queued_items);
    GenerationLimits& l = out.generation;
    l.max_running = g.value("max_running", l.max_running);
    l.max_waiting = g.value("max_waiting", l.max_waiting);
    l.max_cache_bytes = static_cast<int64_t>(g.value("max_cache_mb", 512.0) * (1 << 20));
    l.default_max_new_tokens = g.value("default_max_new_tokens", l.default_max_new_tokens);
    l.max_new_tokens_limit = g.value("max_new_tokens_limit", l.max_new_tokens_limit);
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("batching/generation settings: ", e.what()));
  }
  if (overrides.max_batch_size > 0) out.batching.max_batch_size = overrides.max_batch_size;
  if (overrides.max_queue_delay_us >= 0) {
    out.batching.max_queue_delay = absl::Microseconds(overrides.max_queue_delay_us);
  }
  if (overrides.max_running_sequences > 0) out.generation.max_running = overrides.max_running_sequences;
  const BatchingOptions& b = out.batching;
  const GenerationLimits& l = out.generation;
  if (b.max_batch_size < 1 || b.max_queued_items < 1 || b.max_queue_delay < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        "batching: max_batch_size and max_queue_size must be positive, max_queue_delay_ms >= 0");
  }
  if (l.max_running < 1 || l.max_waiting < 1 || l.max_cache_bytes < 1 || l.default_max_new_tokens < 1 ||
      l.max_new_tokens_limit < l.default_max_new_tokens) {
    return absl::InvalidArgumentError(
        "generation: max_running, max_waiting, max_cache_mb, default_max_new_tokens must be positive "
        "and max_new_tokens_limit at least default_max_new_tokens");
  }
  return out;
}

}  // namespace elliptical::server
