// What ImageClassifier::Prepare and ImageSegmenter::Prepare hand back: an image tensor in CPU
// memory, ready to batch. Only model/ sources see this definition; the server holds the opaque
// pointer.
#pragma once

#include <torch/torch.h>

#include "absl/types/span.h"
#include "model/config/config_fields.h"

namespace elliptical::model {

struct PreparedImage {
  PreparedImage() = default;
  explicit PreparedImage(torch::Tensor normalised) : pixels(std::move(normalised)) {}
  PreparedImage(torch::Tensor bytes, const Normalisation& n) : pixels(std::move(bytes)), normalisation(n) {}

  // (1, 3, H, W), either float32 and normalised, or uint8: an 8-bit image at the model's size
  // still to scale to [0, 1] and normalise with `normalisation`. A CUDA model keeps images as
  // bytes so the host->device copy moves one byte per channel value instead of four; the
  // arithmetic then runs on the device (ScaleAndNormalise).
  torch::Tensor pixels;
  Normalisation normalisation;  // read only when pixels are uint8

  bool is_bytes() const { return pixels.scalar_type() == torch::kUInt8; }
};

// (B, 3, H, W) uint8 on any device -> float32 x / 255, then (x - mean) / std per channel: the
// operations, in the order, of the CPU path (ImageToTensor, then Normalise), so the result is the
// same bit for bit on the CPU and on CUDA. The constants travel as device tensors: CUDA turns a
// division by a CPU scalar into a multiplication by its float32 reciprocal, which differs from
// x / 255 by an ulp for about half of the 256 byte values.
torch::Tensor ScaleAndNormalise(const torch::Tensor& bytes, const Normalisation& normalisation);

// The image as a normalised float32 (1, 3, H, W) CPU tensor, whichever way it was prepared.
torch::Tensor NormalisedPixels(const PreparedImage& image);

// Concatenates prepared images (same size) into a batch on `device` in `dtype`, using the
// calling thread's current CUDA stream (runtime.h: UseOwnStreamOnThisThread). When every image
// is bytes, the batch crosses as uint8 and is scaled and normalised on the device in float32
// before the cast to `dtype`; otherwise (client float tensors, torch_bilinear resizes; a mixed
// batch converts its byte images on the CPU) as float32. On CUDA the batch is assembled straight
// into pinned memory from LibTorch's caching host allocator, which reuses its blocks (a block
// goes back once the copy that reads it has finished on its stream), so the copy is
// asynchronous and staging memory does not grow per batch.
torch::Tensor ToDevice(absl::Span<const PreparedImage* const> images, const torch::Device& device,
                       torch::ScalarType dtype);

}  // namespace elliptical::model
