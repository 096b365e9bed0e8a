// The ViT classifier loaded from a model directory, against the independent Python reference
// (tests/reference/elliptical_vit.py), and the properties a batching server relies on.
#include <limits>
#include <string_view>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "model/api/image_classifier.h"
#include "model/nets/prepared_image.h"
#include "server/input/image_decoder.h"
#include "tests/support/fixtures.h"
#include "tests/support/float32_tolerance.h"

namespace elliptical::model {
namespace {

using elliptical::testing::ExpectedProbabilities;
using elliptical::testing::FixturesDir;
using elliptical::testing::ReadFileBytes;

RgbImage Load(const std::string& name) {
  auto image = server::DecodeImage(ReadFileBytes(FixturesDir() + "/images/" + name), {});
  EXPECT_TRUE(image.ok()) << image.status();
  return *image;
}

std::unique_ptr<ImageClassifier> LoadModel(const std::string& name) {
  auto model = ImageClassifier::Load(FixturesDir() + "/models/" + name, {});
  EXPECT_TRUE(model.ok()) << model.status();
  return model.ok() ? std::move(*model) : nullptr;
}

void ExpectClose(const std::vector<float>& got, const nlohmann::json& want) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    const double w = want[i].get<double>();
    EXPECT_NEAR(got[i], w, 1e-4 * std::max(1.0, std::abs(w)) + 1e-6) << "class " << i;
  }
}

TEST(ViTClassifier, MatchesPythonReferenceInBothModes) {
  const nlohmann::json expected = ExpectedProbabilities();
  for (const char* mode : {"elliptical", "dot_product"}) {
    auto model = LoadModel(std::string(mode) == "elliptical" ? "vit-test" : "vit-test-dot");
    ASSERT_NE(model, nullptr);
    for (int i = 0; i < 4; ++i) {
      const std::string name = "pattern_" + std::to_string(i) + ".png";
      auto out = model->Classify({Load(name)}, /*with_stats=*/false);
      ASSERT_TRUE(out.ok()) << out.status();
      SCOPED_TRACE(std::string(mode) + " " + name);
      ExpectClose((*out)[0].probabilities, expected[name][mode]);
    }
  }
}

TEST(ViTClassifier, ResizesLikeTheReference) {
  auto model = LoadModel("vit-test");
  ASSERT_NE(model, nullptr);
  auto out = model->Classify({Load("wide_80x60.png")}, false);
  ASSERT_TRUE(out.ok()) << out.status();
  ExpectClose((*out)[0].probabilities, ExpectedProbabilities()["wide_80x60.png"]["elliptical"]);
}

TEST(ViTClassifier, AnswerDoesNotDependOnTheBatch) {
  auto model = LoadModel("vit-test");
  ASSERT_NE(model, nullptr);
  std::vector<RgbImage> pool = {Load("pattern_0.png"), Load("pattern_1.png"), Load("pattern_2.png"),
                                Load("pattern_3.png"), Load("wide_80x60.png")};
  auto alone = model->Classify({pool[1]}, false);
  ASSERT_TRUE(alone.ok());
  // vit-test: 3 blocks, width 48, MLP width 96, 17 tokens (tests/fixtures). A softmax moves each
  // probability by at most twice the largest logit error; the logits are O(1) here.
  const double tolerance = 2 * elliptical::testing::TransformerReorderTolerance(3, 96);
  for (int position = 0; position < 8; ++position) {
    std::vector<RgbImage> batch;
    for (int i = 0; i < 8; ++i) batch.push_back(i == position ? pool[1] : pool[(i % 2 == 0) ? 0 : 3 + i % 2]);
    auto out = model->Classify(batch, false);
    ASSERT_TRUE(out.ok());
    for (size_t c = 0; c < (*alone)[0].probabilities.size(); ++c) {
      EXPECT_NEAR((*out)[position].probabilities[c], (*alone)[0].probabilities[c], tolerance)
          << "position " << position << " class " << c;
    }
  }
}

TEST(ViTClassifier, StatisticsDescribeEveryLayer) {
  auto model = LoadModel("vit-test");
  ASSERT_NE(model, nullptr);
  auto out = model->Classify({Load("pattern_0.png")}, /*with_stats=*/true);
  ASSERT_TRUE(out.ok());
  const auto& stats = (*out)[0].stats;
  ASSERT_EQ(stats.size(), 3u);
  EXPECT_FALSE(stats[0].elliptical);  // block 0 has no previous layer
  EXPECT_TRUE(stats[0].heads.empty());
  for (int l = 1; l < 3; ++l) {
    ASSERT_TRUE(stats[l].elliptical);
    ASSERT_EQ(stats[l].heads.size(), 3u);
    for (const auto& head : stats[l].heads) {
      EXPECT_GT(head.min, 0.0f);
      EXPECT_LE(head.mean, 1.0f);
      EXPECT_GE(head.mean, head.min);
      EXPECT_GT(head.effective_dimension, 1.0f / 16);  // head_dim 16
      EXPECT_LE(head.effective_dimension, 1.0f + 1e-5f);
    }
  }
  for (const auto& layer : stats) {
    EXPECT_GE(layer.mean_token_cosine_similarity, -1.0f);
    EXPECT_LE(layer.mean_token_cosine_similarity, 1.0f + 1e-5f);
  }
}

// A client's tensor (the KServe "tensor" input) in place of the server's preprocessing.
PixelTensor ViewOf(const torch::Tensor& t, PixelTensor::Type type) {
  PixelTensor view;
  view.height = static_cast<int>(t.size(2));
  view.width = static_cast<int>(t.size(3));
  view.type = type;
  view.data = std::string_view(static_cast<const char*>(t.data_ptr()), t.numel() * t.element_size());
  return view;
}

TEST(ViTClassifier, APreparedTensorFromTheClientGivesTheImagesAnswer) {
  auto model = LoadModel("vit-test");
  ASSERT_NE(model, nullptr);
  const RgbImage image = Load("wide_80x60.png");  // resized by Prepare
  auto from_image = model->Prepare(image);
  ASSERT_TRUE(from_image.ok()) << from_image.status();
  const torch::Tensor pixels = (*from_image)->pixels.contiguous();
  auto from_tensor = model->PrepareTensor(ViewOf(pixels, PixelTensor::Type::kFloat32));
  ASSERT_TRUE(from_tensor.ok()) << from_tensor.status();
  EXPECT_TRUE(torch::equal((*from_tensor)->pixels, pixels));
  // The same input bits in the same batch shape: the same answer, bit for bit.
  const PreparedImage* a = from_image->get();
  const PreparedImage* b = from_tensor->get();
  auto answer_image = model->ClassifyPrepared({&a, 1}, false);
  auto answer_tensor = model->ClassifyPrepared({&b, 1}, false);
  ASSERT_TRUE(answer_image.ok() && answer_tensor.ok());
  EXPECT_EQ((*answer_image)[0].probabilities, (*answer_tensor)[0].probabilities);
  // Both are the same prepared input to the batcher: they share a batch, each keeping its answer
  // (within the batch-invariance tolerance of AnswerDoesNotDependOnTheBatch).
  const PreparedImage* both[] = {a, b};
  auto shared = model->ClassifyPrepared(both, false);
  ASSERT_TRUE(shared.ok()) << shared.status();
  const double tolerance = 2 * elliptical::testing::TransformerReorderTolerance(3, 96);
  for (const Classification& c : *shared) {
    for (size_t k = 0; k < c.probabilities.size(); ++k) {
      EXPECT_NEAR(c.probabilities[k], (*answer_image)[0].probabilities[k], tolerance) << "class " << k;
    }
  }

  // FP16 and BF16 arrive as the float32 of their values.
  for (auto [type, dtype] : {std::pair{PixelTensor::Type::kFloat16, torch::kFloat16},
                             std::pair{PixelTensor::Type::kBFloat16, torch::kBFloat16}}) {
    const torch::Tensor low = pixels.to(dtype).contiguous();
    auto prepared = model->PrepareTensor(ViewOf(low, type));
    ASSERT_TRUE(prepared.ok()) << prepared.status();
    EXPECT_TRUE(torch::equal((*prepared)->pixels, low.to(torch::kFloat32)));
  }

  // Another size, and a NaN: refused, naming what is wrong.
  const torch::Tensor small = torch::zeros({1, 3, 8, 8});
  auto refused = model->PrepareTensor(ViewOf(small, PixelTensor::Type::kFloat32));
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(refused.status().message().find("the model takes 3 x 32 x 32"), std::string::npos) << refused.status();
  torch::Tensor nan = pixels.clone();
  nan.view(-1)[100].fill_(std::numeric_limits<float>::quiet_NaN());
  refused = model->PrepareTensor(ViewOf(nan, PixelTensor::Type::kFloat32));
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(refused.status().message().find("element 100 is not finite"), std::string::npos) << refused.status();
  PixelTensor truncated = ViewOf(pixels, PixelTensor::Type::kFloat32);
  truncated.data.remove_suffix(1);
  EXPECT_EQ(model->PrepareTensor(truncated).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ViTClassifier, MismatchedWeightsFailWithTheTensorNamed) {
  auto model = ImageClassifier::Load(FixturesDir() + "/models/broken-model", {});
  ASSERT_FALSE(model.ok());
  EXPECT_EQ(model.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(model.status().message().find("missing: blocks.3."), std::string::npos)
      << model.status();
}

TEST(ViTClassifier, UnknownDeviceIsRefused) {
  LoadOptions options;
  options.device = "tpu";
  auto model = ImageClassifier::Load(FixturesDir() + "/models/vit-test", options);
  ASSERT_FALSE(model.ok());
  EXPECT_NE(model.status().message().find("tpu"), std::string::npos);
}

}  // namespace
}  // namespace elliptical::model
