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
};

using ServableLoader = absl::StatusOr<std::shared_ptr<Servable>> (*)(const ServableContext&);

// The loader registered for `family`, or nullptr.
ServableLoader LoaderFor(model::ModelFamily family);

// Loads the model `context.dir` holds with its family's loader; the family's own config errors
// name the file.
absl::StatusOr<std::shared_ptr<Servable>> LoadServable(const ServableContext& context);

}  // namespace elliptical::server
