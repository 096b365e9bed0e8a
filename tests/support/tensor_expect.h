// Reading reference tensors that the fixture scripts wrote as safetensors, and comparing model
// outputs with them to a relative tolerance. Test-only; links LibTorch.
#pragma once

#include <string>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "model/config/safetensors.h"
#include "model/io/weights.h"

namespace elliptical::testing {

inline model::SafetensorsFile OpenReference(const std::string& path) {
  auto file = model::SafetensorsFile::Open(path);
  EXPECT_TRUE(file.ok()) << file.status();
  return *std::move(file);
}

// A copy of the named tensor as float32 (or int64 for integer tensors).
inline torch::Tensor ReferenceTensor(const model::SafetensorsFile& file, const std::string& name) {
  auto it = file.entries().find(name);
  if (it == file.entries().end()) {
    ADD_FAILURE() << "reference tensor " << name << " missing";
    return torch::Tensor();
  }
  const model::SafetensorsEntry& e = it->second;
  torch::ScalarType type = torch::kFloat32;
  if (e.dtype == model::SafetensorsDtype::kI64) type = torch::kInt64;
  if (e.dtype == model::SafetensorsDtype::kF64) type = torch::kFloat64;
  torch::Tensor t = torch::from_blob(const_cast<uint8_t*>(e.data.data()), e.shape, type).clone();
  return type == torch::kFloat64 ? t.to(torch::kFloat32) : t;
}

// |got - want| <= rtol * max(1, |want|) elementwise: the 1e-4 relative parity of the model tests.
inline void ExpectTensorNear(const torch::Tensor& got, const torch::Tensor& want,
                             const std::string& what, double rtol = 1e-4) {
  ASSERT_TRUE(got.defined() && want.defined()) << what;
  ASSERT_EQ(got.sizes(), want.sizes()) << what;
  torch::Tensor g = got.to(torch::kCPU, torch::kFloat32);
  torch::Tensor w = want.to(torch::kFloat32);
  torch::Tensor excess = (g - w).abs() - rtol * w.abs().clamp_min(1.0);
  const double worst = excess.max().item<double>();
  EXPECT_LE(worst, 0.0) << what << ": max |got - want| = " << (g - w).abs().max().item<double>()
                        << " (tolerance " << rtol << " relative)";
}

// Builds a network from its config on the CPU in float32 and strict-loads its weights.
template <typename Net, typename Config>
Net BuildAndLoad(const Config& config) {
  Net net(config);
  net->eval();
  auto weights = model::SafetensorsFile::Open(config.runtime.weights_path);
  EXPECT_TRUE(weights.ok()) << weights.status();
  if (weights.ok()) {
    absl::Status loaded = model::LoadWeights(*net, *weights);
    EXPECT_TRUE(loaded.ok()) << loaded;
  }
  return net;
}

}  // namespace elliptical::testing
