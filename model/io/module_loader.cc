#include "model/io/module_loader.h"

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "model/io/device.h"
#include "model/config/safetensors.h"
#include "model/io/weights.h"

namespace elliptical::model {

absl::StatusOr<Placement> ResolvePlacement(RuntimeFields runtime, const LoadOptions& options,
                                           ModelFamily family) {
  if (!options.device.empty()) runtime.device = options.device;
  const std::string origin = options.dtype.empty() ? "config.json" : "--dtype";
  if (!options.dtype.empty()) runtime.dtype = options.dtype;
  Placement p;
  ELLIPTICAL_ASSIGN_OR_RETURN(p.device, ResolveDevice(runtime.device));
  ELLIPTICAL_ASSIGN_OR_RETURN(p.precision,
                              ChoosePrecision(runtime.dtype, p.device, HostCpuFeatures(), origin, family));
  p.allow_tf32 = runtime.allow_tf32;
  p.precision.reason += Tf32Clause(p.device, p.precision.dtype, runtime.allow_tf32);
  p.tf32_vote = Float32MathPolicy::Get().Join(p.device, p.precision.dtype, runtime.allow_tf32);
  return p;
}

absl::Status PlaceAndLoad(torch::nn::Module& module, const Placement& placement,
                          const std::string& weights_path) {
  ELLIPTICAL_ASSIGN_OR_RETURN(SafetensorsFile weights, SafetensorsFile::Open(weights_path));
  module.to(placement.device, placement.precision.dtype);
  module.eval();
  if (absl::Status s = LoadWeights(module, weights); !s.ok()) {
    return absl::Status(s.code(), absl::StrCat(weights_path, ": ", s.message()));
  }
  return absl::OkStatus();
}

ModelDescription DescribeModule(ModelFamily family, const Placement& placement,
                                const AttentionConfig& attention, const torch::nn::Module& module) {
  ModelDescription d;
  d.family = family;
  d.device = placement.device.str();
  d.dtype = DtypeName(placement.precision.dtype);
  d.dtype_source = placement.precision.source;
  d.dtype_reason = placement.precision.reason;
  d.attention = attention;
  for (const auto& p : module.parameters()) d.num_parameters += p.numel();
  return d;
}

}  // namespace elliptical::model
