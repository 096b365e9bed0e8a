// Images staged as bytes (model/nets/prepared_image.h), as a CUDA model prepares them, run here
// on the CPU: the batch ToDevice makes of them is bit for bit the batch of the float32 path
// (normalised at Prepare time, as a CPU model does and as every model did before), for every
// resize policy that yields 8-bit images; mixed batches convert their byte images; a classifier
// answers the same either way. The same batch on CUDA is in tests/model/gpu_vision_test.cc.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "model/api/image_classifier.h"
#include "model/config/classifier_config.h"
#include "model/nets/image_preprocess.h"
#include "model/nets/prepared_image.h"
#include "tests/support/fixtures.h"
#include "tests/support/test_images.h"

namespace elliptical::model {
namespace {

using elliptical::testing::FixturesDir;

using elliptical::testing::SyntheticImage;

struct Policy {
  std::string name;
  ResizePolicy resize;
  int size;  // 0: kept at its size (the segmenter)
};

// The policies that hand the model 8-bit images: each Pillow one (at any input size), and
// torch_bilinear or the segmenter's no-resize where the image already has the size.
std::vector<Policy> BytePolicies() {
  std::vector<Policy> out;
  for (Interpolation f : {Interpolation::kBilinear, Interpolation::kBicubic}) {
    const std::string filter = f == Interpolation::kBilinear ? "bilinear" : "bicubic";
    out.push_back({"stretch " + filter, {ResizeMode::kStretch, f, 0.875}, 24});
    out.push_back({"shorter side + crop " + filter, {ResizeMode::kShorterSideThenCenterCrop, f, 0.875}, 24});
  }
  out.push_back({"torch_bilinear at size", {}, 24});
  out.push_back({"segmenter, no resize", {}, 0});
  return out;
}

// Inputs for a policy: at the size (the only kind torch_bilinear keeps as bytes), or of several
// sizes and aspects for the Pillow policies.
std::vector<RgbImage> InputsFor(const Policy& p) {
  if (p.resize.interpolation == Interpolation::kTorchBilinear || p.size == 0) {
    const int side = p.size == 0 ? 20 : p.size;
    return {SyntheticImage(side, side, 1), SyntheticImage(side, side, 2), SyntheticImage(side, side, 3)};
  }
  return {SyntheticImage(p.size, p.size, 1), SyntheticImage(57, 31, 2), SyntheticImage(19, 40, 3)};
}

// The batch as the classifier and segmenter made it before bytes were staged: each image
// resized, converted (ImageToTensor), normalised, then concatenated and cast.
torch::Tensor TodaysBatch(const std::vector<RgbImage>& images, const Policy& p, const Normalisation& n,
                          torch::ScalarType dtype) {
  std::vector<torch::Tensor> parts;
  for (const RgbImage& image : images) {
    absl::StatusOr<torch::Tensor> t;
    if (p.size == 0 || p.resize.interpolation == Interpolation::kTorchBilinear) {
      t = ImageToTensor(image, 0);
    } else {
      auto resized = ResizeForModel(image, p.size, p.resize);
      EXPECT_TRUE(resized.ok()) << resized.status();
      t = ImageToTensor(*resized, 0);
    }
    EXPECT_TRUE(t.ok()) << t.status();
    parts.push_back(Normalise(*t, n));
  }
  return torch::cat(parts, 0).to(dtype);
}

std::vector<const PreparedImage*> Pointers(const std::vector<PreparedImage>& images) {
  std::vector<const PreparedImage*> out;
  for (const PreparedImage& image : images) out.push_back(&image);
  return out;
}

std::vector<PreparedImage> PrepareAll(const std::vector<RgbImage>& images, const Policy& p,
                                      const Normalisation& n, bool keep_bytes) {
  std::vector<PreparedImage> out;
  for (const RgbImage& image : images) {
    auto prepared = PrepareImage(image, p.size, n, p.resize, keep_bytes);
    EXPECT_TRUE(prepared.ok()) << prepared.status();
    out.push_back(*std::move(prepared));
  }
  return out;
}

TEST(PreparedImage, BytesStagedBatchEqualsTheFloatBatchExactly) {
  c10::InferenceMode inference;
  const Normalisation imagenet;                                   // timm's default
  const Normalisation other = {{0.5f, 0.25f, 0.125f}, {0.3f, 0.7f, 0.11f}};  // no power-of-2 std
  for (const Policy& p : BytePolicies()) {
    for (const Normalisation& n : {imagenet, other}) {
      for (torch::ScalarType dtype : {torch::kFloat32, torch::kBFloat16}) {
        SCOPED_TRACE(p.name + (dtype == torch::kFloat32 ? ", float32" : ", bfloat16"));
        const std::vector<RgbImage> images = InputsFor(p);
        const std::vector<PreparedImage> bytes = PrepareAll(images, p, n, /*keep_bytes=*/true);
        for (const PreparedImage& b : bytes) {
          ASSERT_TRUE(b.is_bytes());
          ASSERT_EQ(b.pixels.dim(), 4);
          EXPECT_EQ(b.pixels.size(1), 3);
        }
        const std::vector<PreparedImage> floats = PrepareAll(images, p, n, /*keep_bytes=*/false);
        const torch::Tensor want = TodaysBatch(images, p, n, dtype);
        const torch::Tensor got = ToDevice(Pointers(bytes), torch::kCPU, dtype);
        ASSERT_EQ(got.scalar_type(), dtype);
        EXPECT_TRUE(torch::equal(got, want)) << "largest difference "
                                             << (got.to(torch::kFloat64) - want.to(torch::kFloat64)).abs().max().item<double>();
        // A CPU model's own preparation (float32 at Prepare time) is today's batch too.
        EXPECT_TRUE(torch::equal(ToDevice(Pointers(floats), torch::kCPU, dtype), want));
        // And each image alone, converted on the CPU as a mixed batch converts it.
        for (size_t i = 0; i < images.size(); ++i) {
          EXPECT_TRUE(torch::equal(NormalisedPixels(bytes[i]), floats[i].pixels)) << "image " << i;
        }
      }
    }
  }
}

TEST(PreparedImage, TorchBilinearResizeStaysFloat) {
  const Policy stretch{"torch_bilinear", {}, 24};
  auto prepared = PrepareImage(SyntheticImage(40, 30, 5), stretch.size, {}, stretch.resize, /*keep_bytes=*/true);
  ASSERT_TRUE(prepared.ok()) << prepared.status();
  EXPECT_FALSE(prepared->is_bytes()) << "a float resize's output cannot travel as bytes";
  EXPECT_EQ(prepared->pixels.scalar_type(), torch::kFloat32);
  EXPECT_EQ(prepared->pixels.sizes(), torch::IntArrayRef({1, 3, 24, 24}));
}

TEST(PreparedImage, MixedBatchConvertsItsByteImages) {
  c10::InferenceMode inference;
  const Policy p = BytePolicies().front();
  const Normalisation n;
  const std::vector<RgbImage> images = InputsFor(p);
  const std::vector<PreparedImage> bytes = PrepareAll(images, p, n, true);
  const std::vector<PreparedImage> floats = PrepareAll(images, p, n, false);
  torch::manual_seed(3);
  const PreparedImage client(torch::randn({1, 3, p.size, p.size}));  // a client's float tensor
  // Bytes, client float, bytes, and a float image beside them.
  const PreparedImage* mixed[] = {&bytes[0], &client, &bytes[1], &floats[2]};
  const torch::Tensor want = torch::cat({floats[0].pixels, client.pixels, floats[1].pixels, floats[2].pixels}, 0);
  for (torch::ScalarType dtype : {torch::kFloat32, torch::kBFloat16}) {
    EXPECT_TRUE(torch::equal(ToDevice(mixed, torch::kCPU, dtype), want.to(dtype)));
  }
}

// A CUDA classifier's inputs, run through a CPU classifier: the probabilities equal those of the
// CPU's own float32 preparation, bit for bit (the same batch tensor goes in).
TEST(PreparedImage, ClassifierAnswersTheSameFromBytes) {
  const std::string dir = FixturesDir() + "/models/vit-test";
  auto config = ReadClassifierConfig(dir);
  ASSERT_TRUE(config.ok()) << config.status();
  LoadOptions options;
  options.device = "cpu";
  options.dtype = "float32";
  auto model = ImageClassifier::Load(dir, options);
  ASSERT_TRUE(model.ok()) << model.status();
  const int size = config->vit.image_size;
  std::vector<std::shared_ptr<const PreparedImage>> from_model;
  std::vector<PreparedImage> bytes;
  for (const RgbImage& image : {SyntheticImage(size, size, 1), SyntheticImage(size + 13, size + 5, 2), SyntheticImage(size, size, 9)}) {
    auto p = (*model)->Prepare(image);
    ASSERT_TRUE(p.ok()) << p.status();
    EXPECT_FALSE((*p)->is_bytes()) << "a CPU model normalises at Prepare time";
    from_model.push_back(*std::move(p));
    auto b = PrepareImage(image, size, config->normalisation, config->resize, /*keep_bytes=*/true);
    ASSERT_TRUE(b.ok()) << b.status();
    bytes.push_back(*std::move(b));
  }
  std::vector<const PreparedImage*> a;
  for (const auto& p : from_model) a.push_back(p.get());
  // The fixture's policy decides which images can be bytes: those at the size at least.
  EXPECT_TRUE(bytes[0].is_bytes());
  auto want = (*model)->ClassifyPrepared(a, false);
  auto got = (*model)->ClassifyPrepared(Pointers(bytes), false);
  ASSERT_TRUE(want.ok()) << want.status();
  ASSERT_TRUE(got.ok()) << got.status();
  for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ((*got)[i].probabilities, (*want)[i].probabilities) << "image " << i;
  // Only bytes: the batch crosses as uint8 and is normalised after the concatenation.
  const PreparedImage* only_bytes[] = {&bytes[0], &bytes[2]};
  const PreparedImage* only_floats[] = {a[0], a[2]};
  auto got_bytes = (*model)->ClassifyPrepared(only_bytes, false);
  auto want_floats = (*model)->ClassifyPrepared(only_floats, false);
  ASSERT_TRUE(got_bytes.ok() && want_floats.ok());
  for (size_t i = 0; i < 2; ++i) EXPECT_EQ((*got_bytes)[i].probabilities, (*want_floats)[i].probabilities);
}

}  // namespace
}  // namespace elliptical::model
