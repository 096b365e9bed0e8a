// Reduced precision: every family loads and runs in bfloat16 (on the CPU here; CUDA adds
// float16) and stays close to float32. The elliptical metric itself is always float32.
#include <gtest/gtest.h>

#include "model/api/image_classifier.h"
#include "model/api/image_segmenter.h"
#include "model/api/language_model.h"
#include "server/input/image_decoder.h"
#include "tests/support/fixtures.h"

namespace elliptical::model {
namespace {

using elliptical::testing::FixturesDir;
using elliptical::testing::ModelFixturesDir;
using elliptical::testing::ReadFileBytes;

RgbImage Decode(const std::string& path) {
  auto image = server::DecodeImage(ReadFileBytes(path), {});
  EXPECT_TRUE(image.ok()) << image.status();
  return *image;
}

TEST(Precision, ClassifierInBfloat16AgreesWithFloat32) {
  auto fp32 = ImageClassifier::Load(FixturesDir() + "/models/vit-test", {"cpu", "float32"});
  auto bf16 = ImageClassifier::Load(FixturesDir() + "/models/vit-test", {"cpu", "bfloat16"});
  ASSERT_TRUE(fp32.ok() && bf16.ok()) << bf16.status();
  EXPECT_EQ((*bf16)->description().dtype, "bfloat16");
  std::vector<RgbImage> images;
  for (int i = 0; i < 4; ++i) images.push_back(Decode(FixturesDir() + "/images/pattern_" + std::to_string(i) + ".png"));
  auto a = (*fp32)->Classify(images, true);
  auto b = (*bf16)->Classify(images, true);
  ASSERT_TRUE(a.ok() && b.ok()) << b.status();
  for (size_t i = 0; i < images.size(); ++i) {
    for (size_t c = 0; c < (*a)[i].probabilities.size(); ++c) {
      EXPECT_NEAR((*a)[i].probabilities[c], (*b)[i].probabilities[c], 0.05) << "image " << i;
    }
    for (const LayerStats& layer : (*b)[i].stats) {
      for (const HeadMetricStats& h : layer.heads) EXPECT_FALSE(std::isnan(h.mean));
    }
  }
}

TEST(Precision, SegmenterInBfloat16AgreesWithFloat32) {
  const std::string dir = ModelFixturesDir() + "/segmenter";
  auto fp32 = ImageSegmenter::Load(dir + "/models/seg-linear", {"cpu", "float32"});
  auto bf16 = ImageSegmenter::Load(dir + "/models/seg-linear", {"cpu", "bfloat16"});
  ASSERT_TRUE(fp32.ok() && bf16.ok()) << bf16.status();
  std::vector<RgbImage> images = {Decode(dir + "/images/large_70x45.png")};
  auto a = (*fp32)->Segment(images, false);
  auto b = (*bf16)->Segment(images, false);
  ASSERT_TRUE(a.ok() && b.ok()) << b.status();
  size_t same = 0;
  for (size_t p = 0; p < (*a)[0].class_map.size(); ++p) same += (*a)[0].class_map[p] == (*b)[0].class_map[p];
  EXPECT_GE(same, (*a)[0].class_map.size() * 9 / 10);
}

TEST(Precision, LanguageModelDecodesInBfloat16) {
  const std::string dir = ModelFixturesDir() + "/lm/models/lm-pre";
  auto fp32 = LanguageModel::Load(dir, {"cpu", "float32"});
  auto bf16 = LanguageModel::Load(dir, {"cpu", "bfloat16"});
  ASSERT_TRUE(fp32.ok() && bf16.ok()) << bf16.status();
  for (auto* lm : {fp32->get(), bf16->get()}) {
    ASSERT_TRUE(lm->AllocateCache({}).ok());
    std::vector<std::unique_ptr<LanguageModel::Sequence>> seqs;
    auto first = lm->Prefill({{1, 2, 3}, {4, 5}}, &seqs);
    ASSERT_TRUE(first.ok()) << first.status();
    std::vector<LanguageModel::Sequence*> live = {seqs[0].get(), seqs[1].get()};
    auto next = lm->Step(live, {6, 7});
    ASSERT_TRUE(next.ok()) << next.status();
    for (float x : (*next)[1]) ASSERT_TRUE(std::isfinite(x));
  }
  std::vector<int32_t> text = {1, 2, 3, 4, 5, 6, 7, 8, 9};
  auto a = (*fp32)->TokenLogProbs(text, ScaleMode::kPrefix);
  auto b = (*bf16)->TokenLogProbs(text, ScaleMode::kPrefix);
  ASSERT_TRUE(a.ok() && b.ok());
  for (size_t i = 0; i < a->size(); ++i) EXPECT_NEAR((*a)[i], (*b)[i], 0.1 + 0.05 * std::abs((*a)[i]));
}

}  // namespace
}  // namespace elliptical::model
