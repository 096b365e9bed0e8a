// RGB8 images -> the normalised float batch a ViT takes: scale to [0, 1], resize each image to
// the model's square input (bilinear, antialiased when shrinking), subtract mean, divide by std.
#pragma once

#include <array>

#include <torch/torch.h>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "model/image.h"

namespace elliptical::model {

// Returns (B, 3, size, size) float32 on the CPU.
absl::StatusOr<torch::Tensor> PreprocessImages(absl::Span<const RgbImage> images, int size,
                                               const std::array<float, 3>& mean,
                                               const std::array<float, 3>& std);

}  // namespace elliptical::model
