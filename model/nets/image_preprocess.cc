#include "model/nets/image_preprocess.h"

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace elliptical::model {

namespace F = torch::nn::functional;

absl::StatusOr<torch::Tensor> ImageToTensor(const RgbImage& image, size_t index) {
  if (image.width <= 0 || image.height <= 0 ||
      image.pixels.size() != static_cast<size_t>(image.width) * image.height * 3) {
    return absl::InvalidArgumentError(absl::StrCat("image ", index, " has inconsistent dimensions"));
  }
  return torch::from_blob(const_cast<uint8_t*>(image.pixels.data()),
                          {image.height, image.width, 3}, torch::kUInt8)
      .permute({2, 0, 1})
      .unsqueeze(0)
      .to(torch::kFloat32)
      .div_(255.0);  // a copy: from_blob's memory is not ours
}

torch::Tensor Normalise(const torch::Tensor& batch, const Normalisation& n) {
  torch::Tensor m = torch::tensor({n.mean[0], n.mean[1], n.mean[2]}).view({1, 3, 1, 1});
  torch::Tensor s = torch::tensor({n.std[0], n.std[1], n.std[2]}).view({1, 3, 1, 1});
  return (batch - m.to(batch.device())) / s.to(batch.device());
}

absl::StatusOr<torch::Tensor> PreprocessImages(absl::Span<const RgbImage> images, int size,
                                               const Normalisation& normalisation) {
  std::vector<torch::Tensor> resized;
  resized.reserve(images.size());
  for (size_t i = 0; i < images.size(); ++i) {
    ELLIPTICAL_ASSIGN_OR_RETURN(torch::Tensor t, ImageToTensor(images[i], i));
    if (t.size(2) != size || t.size(3) != size) {
      t = F::interpolate(t, F::InterpolateFuncOptions()
                                .size(std::vector<int64_t>{size, size})
                                .mode(torch::kBilinear)
                                .align_corners(false)
                                .antialias(true));
    }
    resized.push_back(t);
  }
  return Normalise(torch::cat(resized, 0), normalisation);
}

}  // namespace elliptical::model
