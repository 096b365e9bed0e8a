// RGB8 images -> the normalised float tensors the vision models take: scale to [0, 1], resize
// when the model needs a fixed square input (bilinear, antialiased when shrinking), subtract
// mean, divide by std.
#pragma once

#include <torch/torch.h>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "model/config/config_fields.h"
#include "model/api/image.h"

namespace elliptical::model {

// (1, 3, H, W) float32 in [0, 1] on the CPU. `index` names the image in errors.
absl::StatusOr<torch::Tensor> ImageToTensor(const RgbImage& image, size_t index);

// (B, 3, H, W) in [0, 1] -> (x - mean) / std per channel.
torch::Tensor Normalise(const torch::Tensor& batch, const Normalisation& normalisation);

// Resizes each image to size x size. Returns (B, 3, size, size) float32 on the CPU.
absl::StatusOr<torch::Tensor> PreprocessImages(absl::Span<const RgbImage> images, int size,
                                               const Normalisation& normalisation);

}  // namespace elliptical::model
