#include "model/nets/prepared_image.h"

#include <vector>

#include "model/nets/image_preprocess.h"

namespace elliptical::model {

torch::Tensor ScaleAndNormalise(const torch::Tensor& bytes, const Normalisation& n) {
  const bool cuda = bytes.is_cuda();
  // 255, the three means, the three stds: one small copy (pinned, so it is queued on the stream
  // like the batch; a pageable copy would wait for the stream). Each constant is a tensor on the
  // batch's device, never a CPU scalar (see the header).
  torch::Tensor constants =
      torch::empty({7}, torch::TensorOptions().dtype(torch::kFloat32).pinned_memory(cuda));
  float* c = constants.data_ptr<float>();
  c[0] = 255.0f;
  for (int i = 0; i < 3; ++i) {
    c[1 + i] = n.mean[i];
    c[4 + i] = n.std[i];
  }
  if (cuda) constants = constants.to(bytes.device(), /*non_blocking=*/true);
  const torch::Tensor divisor = constants[0];
  const torch::Tensor mean = constants.slice(0, 1, 4).view({1, 3, 1, 1});
  const torch::Tensor std = constants.slice(0, 4, 7).view({1, 3, 1, 1});
  // Each is one correctly rounded float32 operation per element on either device (uint8 -> float
  // is exact; separate kernels, so nothing is fused into a multiply-add).
  return (bytes.to(torch::kFloat32).div_(divisor) - mean) / std;
}

torch::Tensor NormalisedPixels(const PreparedImage& image) {
  return image.is_bytes() ? ScaleAndNormalise(image.pixels, image.normalisation) : image.pixels;
}

namespace {

// The parts concatenated along the batch dimension; into pinned memory when it is bound for CUDA.
torch::Tensor Stage(const std::vector<torch::Tensor>& parts, bool pinned) {
  if (!pinned) return torch::cat(parts, 0);
  std::vector<int64_t> sizes = parts.front().sizes().vec();
  sizes[0] = 0;
  for (const torch::Tensor& p : parts) sizes[0] += p.size(0);
  torch::Tensor staged =
      torch::empty(sizes, torch::TensorOptions().dtype(parts.front().scalar_type()).pinned_memory(true));
  return torch::cat_out(staged, parts, 0);
}

}  // namespace

torch::Tensor ToDevice(absl::Span<const PreparedImage* const> images, const torch::Device& device,
                       torch::ScalarType dtype) {
  const bool cuda = device.is_cuda();
  bool bytes = true;
  for (const PreparedImage* image : images) {
    bytes = bytes && image->is_bytes() && image->normalisation.mean == images[0]->normalisation.mean &&
            image->normalisation.std == images[0]->normalisation.std;
  }
  std::vector<torch::Tensor> parts;
  parts.reserve(images.size());
  for (const PreparedImage* image : images) parts.push_back(bytes ? image->pixels : NormalisedPixels(*image));
  const torch::Tensor staged = Stage(parts, cuda);
  // The copies are queued on the calling thread's current stream. A non-blocking copy from
  // pinned memory records an event there, and the caching host allocator hands the block out
  // again only after that event: `staged` may be freed as soon as this returns.
  if (!bytes) return staged.to(device, dtype, /*non_blocking=*/cuda);
  const torch::Tensor on_device = cuda ? staged.to(device, /*non_blocking=*/true) : staged;
  return ScaleAndNormalise(on_device, images[0]->normalisation).to(dtype);
}

}  // namespace elliptical::model
