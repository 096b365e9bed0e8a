#include "model/image_preprocess.h"

#include "absl/strings/str_cat.h"

namespace elliptical::model {

namespace F = torch::nn::functional;

absl::StatusOr<torch::Tensor> PreprocessImages(absl::Span<const RgbImage> images, int size,
                                               const std::array<float, 3>& mean,
                                               const std::array<float, 3>& std) {
  std::vector<torch::Tensor> resized;
  resized.reserve(images.size());
  for (size_t i = 0; i < images.size(); ++i) {
    const RgbImage& image = images[i];
    if (image.width <= 0 || image.height <= 0 ||
        image.pixels.size() != static_cast<size_t>(image.width) * image.height * 3) {
      return absl::InvalidArgumentError(absl::StrCat("image ", i, " has inconsistent dimensions"));
    }
    torch::Tensor t = torch::from_blob(const_cast<uint8_t*>(image.pixels.data()),
                                       {image.height, image.width, 3}, torch::kUInt8)
                          .permute({2, 0, 1})
                          .unsqueeze(0)
                          .to(torch::kFloat32)
                          .div_(255.0);  // (1, 3, H, W), a copy: from_blob's memory is not ours
    if (image.height != size || image.width != size) {
      t = F::interpolate(t, F::InterpolateFuncOptions()
                                .size(std::vector<int64_t>{size, size})
                                .mode(torch::kBilinear)
                                .align_corners(false)
                                .antialias(true));
    }
    resized.push_back(t);
  }
  torch::Tensor batch = torch::cat(resized, 0);
  torch::Tensor m = torch::tensor({mean[0], mean[1], mean[2]}).view({1, 3, 1, 1});
  torch::Tensor s = torch::tensor({std[0], std[1], std[2]}).view({1, 3, 1, 1});
  return (batch - m) / s;
}

}  // namespace elliptical::model
