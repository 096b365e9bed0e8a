// The ViT classifier loaded from a model directory, against the independent Python reference
// (tests/reference/elliptical_vit.py), and the properties a batching server relies on.
#include <gtest/gtest.h>

#include "model/api/image_classifier.h"
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
