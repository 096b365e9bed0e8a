// What ImageClassifier::Prepare and ImageSegmenter::Prepare hand back: a normalised image
// tensor in CPU memory. Only model/ sources see this definition; the server holds the opaque
// pointer.
#pragma once

#include <vector>

#include <torch/torch.h>

#include "absl/types/span.h"

namespace elliptical::model {

struct PreparedImage {
  torch::Tensor pixels;  // (1, 3, H, W) float32, normalised
};

// Concatenates prepared images (same size) into a batch on `device` in `dtype`. On CUDA the
// batch is staged in pinned memory so the copy is asynchronous.
inline torch::Tensor ToDevice(absl::Span<const PreparedImage* const> images, const torch::Device& device,
                              torch::ScalarType dtype) {
  std::vector<torch::Tensor> parts;
  parts.reserve(images.size());
  for (const PreparedImage* image : images) parts.push_back(image->pixels);
  torch::Tensor batch = torch::cat(parts, 0);
  if (device.is_cuda()) return batch.pin_memory().to(device, dtype, /*non_blocking=*/true);
  return batch.to(device, dtype);
}

}  // namespace elliptical::model
