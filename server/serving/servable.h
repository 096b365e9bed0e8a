// What the repository holds for every loaded model, whatever its family: its description, its
// load report, and a way to drain it. Each family's servable adds its own serving verb
// (vision_servable.h: Submit images; language_servable.h: Submit a prompt), which the service
// reaches through ModelRepository::Get<T>, never through a switch on the family.
#pragma once

#include <cstdint>
#include <optional>

#include "absl/time/time.h"

#include "model/api/model_description.h"

namespace elliptical::server {

struct GenerationLoad {
  int running = 0;
  int waiting = 0;
  int cache_slots = 0;
  int cache_slots_used = 0;
  int64_t cache_bytes_allocated = 0;
  int64_t cache_bytes_used = 0;
  int slot_tokens = 0;  // tokens one slot holds
};

// An instantaneous report for the metrics gauges.
struct ServableLoad {
  int queued_items = 0;     // waiting for a batch (vision)
  int instances = 0;
  int busy_instances = 0;
  std::optional<GenerationLoad> generation;  // language models
};

// What a version's warm-up ran before it was ready (servable_registry.h).
struct WarmupReport {
  absl::Duration duration;
  int runs = 0;  // forwards (vision: per instance and batch size) or generations (language)
};

class Servable {
 public:
  virtual ~Servable() = default;
  virtual const model::ModelDescription& description() const = 0;
  virtual ServableLoad load() const = 0;
  // Runs what is queued and running to the end, then refuses new work. Idempotent.
  virtual void Shutdown() = 0;
};

}  // namespace elliptical::server
