// Turns the device and dtype names of a model config into LibTorch values.
#pragma once

#include <string>

#include <torch/torch.h>

#include "absl/status/statusor.h"

namespace elliptical::model {

// "auto" picks the first CUDA device when one is present, else the CPU.
absl::StatusOr<torch::Device> ResolveDevice(const std::string& name);

// "auto" | "float32" | "float16" | "bfloat16" on this machine (precision.h says what auto picks).
// float16 on CPU is refused: its kernels are slow or absent.
absl::StatusOr<torch::ScalarType> ResolveDtype(const std::string& name, const torch::Device& device);

std::string DtypeName(torch::ScalarType dtype);

}  // namespace elliptical::model
