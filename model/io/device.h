// Turns the device and dtype names of a model config into LibTorch values.
#pragma once

#include <string>

#include <torch/torch.h>

#include "absl/status/statusor.h"

namespace elliptical::model {

// "auto" picks the first CUDA device when one is present, else the CPU.
absl::StatusOr<torch::Device> ResolveDevice(const std::string& name);

// "float32" | "float16" | "bfloat16". float16 on CPU is refused: its kernels are slow or absent.
absl::StatusOr<torch::ScalarType> ResolveDtype(const std::string& name, const torch::Device& device);

std::string DtypeName(torch::ScalarType dtype);

}  // namespace elliptical::model
