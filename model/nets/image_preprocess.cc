#include "model/nets/image_preprocess.h"

#include <cstring>
#include <limits>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "model/nets/pil_resize.h"

namespace elliptical::model {

namespace F = torch::nn::functional;

namespace {

absl::Status CheckImage(const RgbImage& image, size_t index) {
  if (image.width <= 0 || image.height <= 0 ||
      image.pixels.size() != static_cast<size_t>(image.width) * image.height * 3) {
    return absl::InvalidArgumentError(absl::StrCat("image ", index, " has inconsistent dimensions"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<torch::Tensor> ImageToTensor(const RgbImage& image, size_t index) {
  ELLIPTICAL_RETURN_IF_ERROR(CheckImage(image, index));
  return torch::from_blob(const_cast<uint8_t*>(image.pixels.data()),
                          {image.height, image.width, 3}, torch::kUInt8)
      .permute({2, 0, 1})
      .unsqueeze(0)
      .to(torch::kFloat32)
      .div_(255.0);  // a copy: from_blob's memory is not ours
}

namespace {

absl::StatusOr<torch::Tensor> TensorFromClient(const PixelTensor& tensor) {
  const int64_t h = tensor.height, w = tensor.width;
  if (h < 1 || w < 1) {
    return absl::InvalidArgumentError(absl::StrCat("tensor is 3 x ", h, " x ", w, ": a side is empty"));
  }
  // h and w are ints: the product fits an int64 with room for the factor 3 * 4.
  const uint64_t needed = static_cast<uint64_t>(3 * h * w) * PixelTensor::ElementBytes(tensor.type);
  if (needed != tensor.data.size()) {
    return absl::InvalidArgumentError(absl::StrCat("tensor is 3 x ", h, " x ", w, " and needs ", needed,
                                                   " bytes, got ", tensor.data.size()));
  }
  const torch::ScalarType type = tensor.type == PixelTensor::Type::kFloat32   ? torch::kFloat32
                                 : tensor.type == PixelTensor::Type::kFloat16 ? torch::kFloat16
                                                                              : torch::kBFloat16;
  // Copied into a tensor of its own first: the request's bytes may sit at any alignment (an
  // HTTP body's binary part). The elements are little-endian, as on every host LibTorch serves.
  torch::Tensor t = torch::empty({1, 3, h, w}, torch::TensorOptions().dtype(type));
  std::memcpy(t.data_ptr(), tensor.data.data(), tensor.data.size());
  if (type != torch::kFloat32) t = t.to(torch::kFloat32);
  if (!torch::isfinite(t).all().item<bool>()) {
    const int64_t at = torch::logical_not(torch::isfinite(t)).flatten().nonzero()[0].item<int64_t>();
    return absl::InvalidArgumentError(absl::StrCat("tensor element ", at, " is not finite (NaN or infinity)"));
  }
  return t;
}

}  // namespace

absl::StatusOr<std::shared_ptr<const PreparedImage>> PrepareClientTensor(const PixelTensor& tensor) {
  try {
    c10::InferenceMode inference;
    absl::StatusOr<torch::Tensor> t = TensorFromClient(tensor);
    if (!t.ok()) return t.status();
    return std::make_shared<const PreparedImage>(PreparedImage{*std::move(t)});
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("reading the tensor failed: ", e.what_without_backtrace()));
  }
}

torch::Tensor Normalise(const torch::Tensor& batch, const Normalisation& n) {
  torch::Tensor m = torch::tensor({n.mean[0], n.mean[1], n.mean[2]}).view({1, 3, 1, 1});
  torch::Tensor s = torch::tensor({n.std[0], n.std[1], n.std[2]}).view({1, 3, 1, 1});
  return (batch - m.to(batch.device())) / s.to(batch.device());
}

std::pair<int64_t, int64_t> ShorterSideSize(int width, int height, int shorter) {
  const bool portrait = width <= height;
  const int64_t short_side = portrait ? width : height;
  const int64_t long_side = portrait ? height : width;
  // Python's int * int / int: exact product, then one correctly rounded division, as in double
  // for operands below 2^53.
  const auto longer = static_cast<int64_t>(static_cast<double>(shorter * long_side) /
                                           static_cast<double>(short_side));
  return portrait ? std::make_pair(int64_t{shorter}, longer) : std::make_pair(longer, int64_t{shorter});
}

int64_t CenterCropOffset(int64_t length, int crop) {
  const int64_t d = length - crop;
  const int64_t half = d / 2;  // d >= 0
  if (d % 2 == 0) return half;
  return half % 2 == 0 ? half : half + 1;  // (half + 0.5) rounds to the even neighbour
}

absl::StatusOr<RgbImage> ResizeForModel(const RgbImage& image, int size, const ResizePolicy& policy) {
  ELLIPTICAL_RETURN_IF_ERROR(CheckImage(image, 0));
  if (policy.interpolation == Interpolation::kTorchBilinear) {
    return absl::InvalidArgumentError("torch_bilinear does not resize 8-bit images");
  }
  const PilFilter filter =
      policy.interpolation == Interpolation::kBicubic ? PilFilter::kBicubic : PilFilter::kBilinear;
  if (policy.mode == ResizeMode::kStretch) return PilResize(image, size, size, filter);

  const int shorter = ShorterSideTarget(size, policy.crop_pct);
  const auto [width, height] = ShorterSideSize(image.width, image.height, shorter);
  // A 1 x 100000 strip: the long side would pass what an int holds (and any sensible image).
  constexpr int64_t kMaxSide = std::numeric_limits<int>::max() / 4;
  if (width > kMaxSide || height > kMaxSide || width < size || height < size) {
    return absl::InvalidArgumentError(absl::StrCat("cannot resize a ", image.width, " x ",
                                                   image.height, " image: its aspect ratio is too extreme"));
  }
  return PilResizeWindow(image, static_cast<int>(width), static_cast<int>(height),
                         static_cast<int>(CenterCropOffset(width, size)),
                         static_cast<int>(CenterCropOffset(height, size)), size, size, filter);
}

namespace {

// An 8-bit image at the model's size, as bytes or normalised.
absl::StatusOr<PreparedImage> FromBytes(const RgbImage& image, const Normalisation& normalisation,
                                        bool keep_bytes) {
  if (!keep_bytes) {
    ELLIPTICAL_ASSIGN_OR_RETURN(torch::Tensor t, ImageToTensor(image, 0));
    return PreparedImage(Normalise(t, normalisation));
  }
  // A copy (from_blob's memory is not ours), laid out (1, 3, H, W) as the batch takes it.
  return PreparedImage(torch::from_blob(const_cast<uint8_t*>(image.pixels.data()),
                                        {image.height, image.width, 3}, torch::kUInt8)
                           .permute({2, 0, 1})
                           .unsqueeze(0)
                           .clone(torch::MemoryFormat::Contiguous),
                       normalisation);
}

}  // namespace

absl::StatusOr<PreparedImage> PrepareImage(const RgbImage& image, int size, const Normalisation& normalisation,
                                           const ResizePolicy& resize, bool keep_bytes) {
  ELLIPTICAL_RETURN_IF_ERROR(CheckImage(image, 0));
  const bool at_size = size <= 0 || (image.width == size && image.height == size);
  if (size <= 0 || resize.interpolation == Interpolation::kTorchBilinear) {
    if (at_size) return FromBytes(image, normalisation, keep_bytes);
    ELLIPTICAL_ASSIGN_OR_RETURN(torch::Tensor t, ImageToTensor(image, 0));
    t = F::interpolate(t, F::InterpolateFuncOptions()
                              .size(std::vector<int64_t>{size, size})
                              .mode(torch::kBilinear)
                              .align_corners(false)
                              .antialias(true));
    return PreparedImage(Normalise(t, normalisation));
  }
  // A Pillow policy resizes even an image at the size (timm's eval transform scales up, then
  // crops); its output is 8-bit.
  auto resized = ResizeForModel(image, size, resize);
  if (!resized.ok()) {
    return absl::Status(resized.status().code(), absl::StrCat("image 0: ", resized.status().message()));
  }
  return FromBytes(*resized, normalisation, keep_bytes);
}

}  // namespace elliptical::model
