// The vision serving path on a CUDA device:
//   - a batch staged as bytes (model/nets/prepared_image.h) and scaled and normalised on the
//     device equals the CPU's float32 batch exactly, and in bfloat16 after the same cast;
//   - model instances, each on its own stream (model/api/runtime.h, UseOwnStreamOnThisThread),
//     classifying different batches at the same time on one model get exactly the answers of
//     the same batches run one at a time.
// Labelled `gpu` in CTest (ctest -L gpu). Without a CUDA device each test is skipped and says why.
// The CPU half of the first property (bytes against today's float path, every policy) is
// tests/model/prepared_image_test.cc.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <c10/cuda/CUDAStream.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "model/api/image_classifier.h"
#include "model/api/runtime.h"
#include "model/config/classifier_config.h"
#include "model/nets/image_preprocess.h"
#include "model/nets/prepared_image.h"
#include "tests/support/skip_without_cuda.h"
#include "tests/support/fixtures.h"
#include "tests/support/test_images.h"

namespace elliptical::model {
namespace {

using elliptical::testing::FixturesDir;

using elliptical::testing::kCuda;

using elliptical::testing::SyntheticImage;

std::vector<const PreparedImage*> Pointers(const std::vector<PreparedImage>& images) {
  std::vector<const PreparedImage*> out;
  for (const PreparedImage& image : images) out.push_back(&image);
  return out;
}

// Exact, not within a tolerance: every step is exact or one correctly rounded IEEE float32
// operation on both devices. uint8 -> float32 is exact; x / 255 is a true division on each
// (the 255 is a device tensor: CUDA would multiply by a rounded reciprocal were it a CPU
// scalar); x - mean and then / std are one rounding each, in separate kernels, so nothing is
// contracted into a fused multiply-add; CUDA's float32 division is IEEE-rounded unless built
// with fast math, which LibTorch is not. The bfloat16 cast rounds to nearest even on both.
TEST(GpuVision, BytesStagedBatchOnCudaEqualsCpuFloat32Batch) {
  SKIP_WITHOUT_CUDA();
  c10::InferenceMode inference;
  UseOwnStreamOnThisThread("cuda:0");
  const Normalisation n;
  const std::vector<ResizePolicy> policies = {
      {ResizeMode::kStretch, Interpolation::kBicubic, 0.875},
      {ResizeMode::kShorterSideThenCenterCrop, Interpolation::kBilinear, 0.9},
      {}};  // torch_bilinear, images at the size
  for (const ResizePolicy& policy : policies) {
    const bool pillow = policy.interpolation != Interpolation::kTorchBilinear;
    std::vector<PreparedImage> bytes, floats;
    for (int i = 0; i < 8; ++i) {
      const RgbImage image = pillow ? SyntheticImage(40 + 3 * i, 30 + 5 * i, i) : SyntheticImage(32, 32, i);
      auto b = PrepareImage(image, 32, n, policy, /*keep_bytes=*/true);
      auto f = PrepareImage(image, 32, n, policy, /*keep_bytes=*/false);
      ASSERT_TRUE(b.ok() && f.ok());
      ASSERT_TRUE(b->is_bytes());
      bytes.push_back(*std::move(b));
      floats.push_back(*std::move(f));
    }
    const torch::Tensor want = ToDevice(Pointers(floats), torch::kCPU, torch::kFloat32);
    const torch::Tensor got = ToDevice(Pointers(bytes), kCuda, torch::kFloat32);
    ASSERT_TRUE(got.is_cuda());
    const torch::Tensor back = got.cpu();
    EXPECT_TRUE(torch::equal(back, want)) << "largest difference " << (back - want).abs().max().item<double>();
    EXPECT_TRUE(torch::equal(ToDevice(Pointers(bytes), kCuda, torch::kBFloat16).cpu(), want.to(torch::kBFloat16)));
    // A mixed batch: the byte images are converted on the CPU and cross as float32.
    const PreparedImage* mixed[] = {&bytes[0], &floats[1], &bytes[2]};
    const PreparedImage* mixed_want[] = {&floats[0], &floats[1], &floats[2]};
    EXPECT_TRUE(torch::equal(ToDevice(mixed, kCuda, torch::kFloat32).cpu(),
                             ToDevice(mixed_want, torch::kCPU, torch::kFloat32)));
  }
}

TEST(GpuVision, EachThreadGetsAStreamOfItsOwn) {
  SKIP_WITHOUT_CUDA();
  UseOwnStreamOnThisThread("cuda:0");
  const c10::cuda::CUDAStream mine = c10::cuda::getCurrentCUDAStream(0);
  EXPECT_NE(mine, c10::cuda::getDefaultCUDAStream(0));
  c10::cuda::CUDAStream other = mine;
  std::thread([&] {
    UseOwnStreamOnThisThread("cuda:0");
    other = c10::cuda::getCurrentCUDAStream(0);
  }).join();
  EXPECT_NE(other, mine);
  EXPECT_NE(other, c10::cuda::getDefaultCUDAStream(0));
  UseOwnStreamOnThisThread("cpu");  // a no-op
  EXPECT_EQ(c10::cuda::getCurrentCUDAStream(0), mine);
}

// Two instances on their own streams, one model, float32. Their answers are exactly those of the
// same batches run alone: each kernel's order of operations depends on the shapes and launch
// configuration only, which the stream does not change (LibTorch gives each stream its own
// cuBLAS workspace), and a stream's work sees only its own buffers. A missing ordering between
// a stream's copy, kernels and copy-back would show as a wrong answer here.
TEST(GpuVision, ConcurrentInstancesOnOwnStreamsAnswerAsOneAtATime) {
  SKIP_WITHOUT_CUDA();
  const std::string dir = FixturesDir() + "/models/vit-test";
  LoadOptions options;
  options.device = "cuda:0";
  options.dtype = "float32";
  auto loaded = ImageClassifier::Load(dir, options);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  ImageClassifier& model = **loaded;
  const int size = model.description().image_size;
  // Batch A: 8 images, some at the size, some resized (bytes, and float32 where the fixture's
  // policy resizes on floats: a mixed batch); batch B: 5 others at the size (bytes).
  std::vector<std::vector<std::shared_ptr<const PreparedImage>>> batches(2);
  for (int i = 0; i < 8; ++i) {
    auto p = model.Prepare(SyntheticImage(size + (i % 3) * 7, size + (i % 2) * 5, i));
    ASSERT_TRUE(p.ok()) << p.status();
    batches[0].push_back(*std::move(p));
  }
  for (int i = 0; i < 5; ++i) {
    auto p = model.Prepare(SyntheticImage(size, size, 100 + i));
    ASSERT_TRUE(p.ok()) << p.status();
    batches[1].push_back(*std::move(p));
  }
  std::vector<std::vector<const PreparedImage*>> pointers(2);
  for (int b = 0; b < 2; ++b) {
    for (const auto& p : batches[b]) pointers[b].push_back(p.get());
  }
  UseOwnStreamOnThisThread("cuda:0");
  std::vector<std::vector<Classification>> alone(2);
  for (int b = 0; b < 2; ++b) {
    auto out = model.ClassifyPrepared(pointers[b], false);
    ASSERT_TRUE(out.ok()) << out.status();
    alone[b] = *std::move(out);
  }
  constexpr int kRounds = 200;
  std::atomic<int> mismatches{0}, failures{0};
  std::vector<std::thread> instances;
  for (int b = 0; b < 2; ++b) {
    instances.emplace_back([&, b] {
      UseOwnStreamOnThisThread("cuda:0");
      for (int round = 0; round < kRounds; ++round) {
        auto out = model.ClassifyPrepared(pointers[b], false);
        if (!out.ok()) {
          ++failures;
          continue;
        }
        for (size_t i = 0; i < out->size(); ++i) mismatches += (*out)[i].probabilities != alone[b][i].probabilities;
      }
    });
  }
  for (std::thread& t : instances) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(mismatches.load(), 0) << "of " << kRounds * 13 << " answers";
}

}  // namespace
}  // namespace elliptical::model
