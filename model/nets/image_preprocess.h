// RGB8 images -> the tensors the vision models take: resize when the model needs a fixed square
// input (as the model's config says: ResizePolicy), scale to [0, 1], subtract mean, divide by
// std (or keep the bytes for the device to do the last three: prepared_image.h).
#pragma once

#include <memory>
#include <utility>

#include <torch/torch.h>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "model/config/config_fields.h"
#include "model/api/image.h"
#include "model/nets/prepared_image.h"

namespace elliptical::model {

// (1, 3, H, W) float32 in [0, 1] on the CPU. `index` names the image in errors.
absl::StatusOr<torch::Tensor> ImageToTensor(const RgbImage& image, size_t index);

// A client's preprocessed tensor as a prepared image: (1, 3, H, W) float32 on the CPU (a copy:
// the view's bytes are the request's). INVALID_ARGUMENT when its bytes do not match its size and
// type, or when an element is NaN or infinite (which would otherwise turn every probability into
// NaN); LibTorch's own failures are INTERNAL. The classifier and the segmenter both take it.
absl::StatusOr<std::shared_ptr<const PreparedImage>> PrepareClientTensor(const PixelTensor& tensor);

// (B, 3, H, W) in [0, 1] -> (x - mean) / std per channel.
torch::Tensor Normalise(const torch::Tensor& batch, const Normalisation& normalisation);

// torchvision's Resize(int) output size for a width x height image: the shorter side becomes
// `shorter`, the longer int(shorter * long / short). Returns (width, height).
std::pair<int64_t, int64_t> ShorterSideSize(int width, int height, int shorter);

// torchvision's CenterCrop offset along a side of `length` pixels: int(round((length - crop) / 2))
// with Python's round (half to even).
int64_t CenterCropOffset(int64_t length, int crop);

// The 8-bit size x size image a Pillow-interpolated policy (bilinear, bicubic) makes of `image`:
// Image.resize to size x size (stretch), or timm's eval transform (Resize(floor(size /
// crop_pct)) then CenterCrop(size)) on a PIL image, byte for byte. INVALID_ARGUMENT for an
// inconsistent image, torch_bilinear, or a shape too extreme to resize.
absl::StatusOr<RgbImage> ResizeForModel(const RgbImage& image, int size, const ResizePolicy& policy);

// One image as a vision model takes it: brought to size x size as `resize` says (size 0: kept
// as it is, the segmenter's case), scaled to [0, 1] and normalised. Where the image reaches the
// model as 8 bits per channel (a Pillow-interpolated policy's output, or an image already at
// the size) and `keep_bytes`, the result holds those bytes and the normalisation instead, for
// ToDevice to finish on the device; otherwise a float32 tensor, as torch_bilinear's
// antialiased resize of float pixels makes one. The default policy is the original one:
// stretch with LibTorch's antialiased bilinear on float pixels. Errors name the image as
// image 0.
absl::StatusOr<PreparedImage> PrepareImage(const RgbImage& image, int size, const Normalisation& normalisation,
                                           const ResizePolicy& resize, bool keep_bytes);

}  // namespace elliptical::model
