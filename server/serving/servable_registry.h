// How a model directory becomes a Servable: one loader per model family, listed in one table
// (servable_registry.cc). The repository calls LoadServable and never names a family.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "model/api/image_classifier.h"
#include "model/config/model_dir.h"
#include "server/metrics/server_metrics.h"
#include "server/repository/serving_config.h"
#include "server/serving/servable.h"

namespace elliptical::server {

struct ServableContext {
  std::string name;
  model::ModelDirectory dir;
  ServingConfig serving;
  model::LoadOptions load;
  ServerMetrics* metrics = nullptr;  // optional
  double attention_stats_sample_rate = 0;
  // Warm up before the servable is returned: a vision model runs a synthetic batch of every
  // batch-size bucket (powers of two up to max_batch_size, and max_batch_size) on each of its
  // instances; a language model runs short generations at one and at max_running sequences,
  // from a short and a long prompt. LibTorch's first-call costs (allocator growth, kernel and
  // oneDNN primitive selection) are paid here, not by the first requests.
  bool warmup = true;
};

using ServableLoader = absl::StatusOr<std::shared_ptr<Servable>> (*)(const ServableContext&, WarmupReport*);

// The loader registered for `family`, or nullptr.
ServableLoader LoaderFor(model::ModelFamily family);

// Loads the model `context.dir` holds with its family's loader, and warms it up (`warmup` says
// what that ran); the family's own config errors name the file. A warm-up that fails fails the
// load: a model that cannot run its first batch is not ready.
absl::StatusOr<std::shared_ptr<Servable>> LoadServable(const ServableContext& context, WarmupReport* warmup);

}  // namespace elliptical::server
