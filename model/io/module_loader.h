// What every family's Load does the same way: apply the server's device/dtype overrides,
// resolve them, place a freshly built module there in eval mode, and load its weights strictly.
#pragma once

#include <functional>
#include <string>

#include <torch/torch.h>

#include "absl/status/statusor.h"
#include "model/config/config_fields.h"
#include "model/api/image_classifier.h"
#include "model/api/model_description.h"
#include "model/io/precision.h"

namespace elliptical::model {

struct Placement {
  torch::Device device = torch::kCPU;
  PrecisionChoice precision;  // the dtype and why (with the TF32 clause on CUDA)
  bool allow_tf32 = false;    // the config's, whatever its effect
  // A CUDA float32 model's vote in Float32MathPolicy; null for every other. The loaded model
  // keeps it (LoadedHold) so the vote ends with the model.
  std::shared_ptr<const Float32MathPolicy::Vote> tf32_vote;
};

// `runtime` with `options` applied, resolved against the machine.
absl::StatusOr<Placement> ResolvePlacement(RuntimeFields runtime, const LoadOptions& options,
                                           ModelFamily family);

// Moves `module` to `placement`, switches it to eval mode and loads `weights_path` into it;
// errors name the file (and, from LoadWeights, every mismatched tensor).
absl::Status PlaceAndLoad(torch::nn::Module& module, const Placement& placement,
                          const std::string& weights_path);

// The description fields every family fills the same way.
ModelDescription DescribeModule(ModelFamily family, const Placement& placement,
                                const AttentionConfig& attention, const torch::nn::Module& module);

// Runs `load` (which builds and loads a module), turning LibTorch exceptions into a status that
// names the directory.
template <typename T>
absl::StatusOr<T> GuardLoad(const std::string& directory, const std::function<absl::StatusOr<T>()>& load) {
  try {
    return load();
  } catch (const c10::Error& e) {
    return absl::InternalError("loading " + directory + ": " + e.what_without_backtrace());
  }
}

}  // namespace elliptical::model
