// Reduced precision: every family loads and runs in bfloat16 (on the CPU here; CUDA adds
// float16) and stays close to float32. The elliptical metric itself is always float32.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <iostream>

#include "model/api/image_classifier.h"
#include "model/api/image_segmenter.h"
#include "model/api/language_model.h"
#include "model/io/precision.h"
#include "tests/support/bfloat16_tolerance.h"
#include "tests/support/fixtures.h"
#include "tests/support/test_images.h"

namespace elliptical::model {
namespace {

using elliptical::testing::FixturesDir;
using elliptical::testing::ModelFixturesDir;

using elliptical::testing::DecodeImageFile;
using elliptical::testing::PatternImages;

TEST(Precision, ClassifierInBfloat16AgreesWithFloat32) {
  auto fp32 = ImageClassifier::Load(FixturesDir() + "/models/vit-test", {"cpu", "float32"});
  auto bf16 = ImageClassifier::Load(FixturesDir() + "/models/vit-test", {"cpu", "bfloat16"});
  ASSERT_TRUE(fp32.ok() && bf16.ok()) << bf16.status();
  EXPECT_EQ((*bf16)->description().dtype, "bfloat16");
  const std::vector<RgbImage> images = PatternImages();
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
  std::vector<RgbImage> images = {DecodeImageFile(dir + "/images/large_70x45.png")};
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

// The spread of a row (max - min): the scale its errors are measured against.
double Spread(const std::vector<float>& row) {
  auto [lo, hi] = std::minmax_element(row.begin(), row.end());
  return static_cast<double>(*hi) - static_cast<double>(*lo);
}

std::vector<float> Logs(const std::vector<float>& p) {
  std::vector<float> out;
  for (float x : p) out.push_back(std::log(x));
  return out;
}

// log p_i = z_i - logsumexp(z) moves by at most twice the largest logit error, and the spread of
// the log-probabilities is the spread of the logits.
// Returns the largest error as a fraction of the bound.
double ExpectLogProbsWithin(const std::vector<float>& fp32, const std::vector<float>& bf16, double tol,
                            const std::string& what) {
  const std::vector<float> a = Logs(fp32), b = Logs(bf16);
  const double bound = 2.0 * tol * std::max(1.0, Spread(a));
  double worst = 0;
  for (size_t c = 0; c < a.size(); ++c) {
    EXPECT_LE(std::abs(a[c] - b[c]), bound) << what << " class " << c;
    worst = std::max(worst, std::abs(a[c] - b[c]) / bound);
  }
  return worst;
}

TEST(Precision, ClassifierBfloat16WithinTheRoundoffBound) {
  auto fp32 = ImageClassifier::Load(FixturesDir() + "/models/vit-test", {"cpu", "float32"});
  auto bf16 = ImageClassifier::Load(FixturesDir() + "/models/vit-test", {"cpu", "bfloat16"});
  ASSERT_TRUE(fp32.ok() && bf16.ok()) << bf16.status();
  const double tol = elliptical::testing::TransformerBfloat16Tolerance((*fp32)->description().num_layers);
  const std::vector<RgbImage> images = PatternImages();
  auto a = (*fp32)->Classify(images, false);
  auto b = (*bf16)->Classify(images, false);
  ASSERT_TRUE(a.ok() && b.ok()) << b.status();
  double worst = 0;
  for (size_t i = 0; i < images.size(); ++i) {
    worst = std::max(worst, ExpectLogProbsWithin((*a)[i].probabilities, (*b)[i].probabilities, tol,
                                                 "image " + std::to_string(i)));
  }
  std::cout << "bf16 against float32: worst error " << worst << " of the bound (tol " << tol << ")\n";
  // Batch invariance in bf16: each image alone against the batch of four; both are within tol
  // of float32, so within 2 tol of each other.
  for (size_t i = 0; i < images.size(); ++i) {
    auto alone = (*bf16)->Classify(absl::MakeConstSpan(&images[i], 1), false);
    ASSERT_TRUE(alone.ok());
    ExpectLogProbsWithin((*b)[i].probabilities, (*alone)[0].probabilities, 2 * tol,
                         "image " + std::to_string(i) + " alone against batched");
  }
}

TEST(Precision, LanguageModelBfloat16LogitsWithinTheRoundoffBound) {
  const std::string dir = ModelFixturesDir() + "/lm/models/lm-pre";
  auto fp32 = LanguageModel::Load(dir, {"cpu", "float32"});
  auto bf16 = LanguageModel::Load(dir, {"cpu", "bfloat16"});
  ASSERT_TRUE(fp32.ok() && bf16.ok()) << bf16.status();
  const double tol = elliptical::testing::TransformerBfloat16Tolerance((*fp32)->description().num_layers);
  std::vector<std::vector<float>> logits[2];
  int k = 0;
  for (auto* lm : {fp32->get(), bf16->get()}) {
    ASSERT_TRUE(lm->AllocateCache({}).ok());
    std::vector<std::unique_ptr<LanguageModel::Sequence>> seqs;
    auto first = lm->Prefill({{1, 2, 3, 4, 5, 6}, {7, 8, 9}}, &seqs);
    ASSERT_TRUE(first.ok()) << first.status();
    std::vector<LanguageModel::Sequence*> live = {seqs[0].get(), seqs[1].get()};
    auto next = lm->Step(live, {10, 11});
    ASSERT_TRUE(next.ok()) << next.status();
    for (auto& row : *first) logits[k].push_back(row);
    for (auto& row : *next) logits[k].push_back(row);
    ++k;
  }
  int decided = 0;
  double worst = 0;
  for (size_t r = 0; r < logits[0].size(); ++r) {
    const std::vector<float>& a = logits[0][r];
    const std::vector<float>& b = logits[1][r];
    const double bound = tol * std::max(1.0, Spread(a));
    for (size_t v = 0; v < a.size(); ++v) {
      ASSERT_LE(std::abs(a[v] - b[v]), bound) << "row " << r << " token " << v;
      worst = std::max(worst, std::abs(a[v] - b[v]) / bound);
    }
    // Greedy decoding agrees wherever float32's top-2 margin exceeds both rows' errors.
    std::vector<float> sorted = a;
    std::partial_sort(sorted.begin(), sorted.begin() + 2, sorted.end(), std::greater<float>());
    if (sorted[0] - sorted[1] > 2 * bound) {
      ++decided;
      EXPECT_EQ(std::max_element(a.begin(), a.end()) - a.begin(), std::max_element(b.begin(), b.end()) - b.begin())
          << "row " << r;
    }
  }
  std::cout << "bf16 against float32: worst logit error " << worst << " of the bound (tol " << tol << "); "
            << decided << " of " << logits[0].size() << " rows with a decided argmax\n";
}

TEST(Precision, AutoLoadsWhatTheChoiceSaysForThisMachine) {
  auto m = ImageClassifier::Load(FixturesDir() + "/models/vit-test", {"cpu", "auto"});
  ASSERT_TRUE(m.ok()) << m.status();
  auto want = ChoosePrecision("auto", torch::kCPU, HostCpuFeatures(), "--dtype");
  ASSERT_TRUE(want.ok());
  EXPECT_EQ((*m)->description().dtype, want->dtype == torch::kBFloat16 ? "bfloat16" : "float32");
  EXPECT_EQ((*m)->description().dtype_source, want->source);
  EXPECT_EQ((*m)->description().dtype_reason, want->reason);
}

}  // namespace
}  // namespace elliptical::model
