// Strict loading of a safetensors file into a module's parameters and buffers: every tensor
// the module has must be in the file with the same shape, and the file may hold nothing else.
// The error lists every missing, unexpected and mis-shaped tensor, so a config that does not
// match its weights is diagnosed in one go.
#pragma once

#include <torch/torch.h>

#include "absl/status/status.h"
#include "model/config/safetensors.h"

namespace elliptical::model {

// Copies (and converts, for example bf16 -> f32) each tensor of `file` into the module's
// tensor of the same name, on the module's device and in its dtype.
absl::Status LoadWeights(torch::nn::Module& module, const SafetensorsFile& file);

}  // namespace elliptical::model
