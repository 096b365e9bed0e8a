// The precision policy on a CUDA device (model/io/precision.h), against the CPU's float32:
//   - float32 on CUDA equals the CPU's float32 within the reordering bound of
//     tests/support/float32_tolerance.h (TF32 would miss it by orders of magnitude: its unit
//     roundoff is 2^-11, not 2^-24);
//   - bfloat16 on CUDA is within the roundoff bound of tests/support/bfloat16_tolerance.h (u = 2^-8,
//     derived the same way), batch invariance within that bound, and greedy generation equal to
//     the CPU's wherever float32's top-2 margin exceeds it.
// Labelled `gpu` in CTest (ctest -L gpu). Without a CUDA device each test is skipped and says why.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <iostream>

#include "model/api/image_classifier.h"
#include "model/api/language_model.h"
#include "model/config/classifier_config.h"
#include "model/config/segmenter_config.h"
#include "model/io/precision.h"
#include "model/nets/image_preprocess.h"
#include "model/nets/segmenter_net.h"
#include "model/nets/vit.h"
#include "tests/support/skip_without_cuda.h"
#include "tests/support/bfloat16_tolerance.h"
#include "tests/support/fixtures.h"
#include "tests/support/test_images.h"
#include "tests/support/float32_tolerance.h"
#include "tests/support/tensor_expect.h"

namespace elliptical::model {
namespace {

using elliptical::testing::FixturesDir;
using elliptical::testing::ModelFixturesDir;

using elliptical::testing::kCuda;


using elliptical::testing::PatternImages;

double Spread(const std::vector<float>& row) {
  auto [lo, hi] = std::minmax_element(row.begin(), row.end());
  return static_cast<double>(*hi) - static_cast<double>(*lo);
}

// |a - b| <= 2 tol max(1, spread) on log-probabilities (as tests/model/precision_test.cc).
void ExpectLogProbsWithin(const std::vector<float>& want, const std::vector<float>& got, double tol,
                          const std::string& what) {
  ASSERT_EQ(want.size(), got.size()) << what;
  std::vector<float> a, b;
  for (float p : want) a.push_back(std::log(p));
  for (float p : got) b.push_back(std::log(p));
  const double bound = 2.0 * tol * std::max(1.0, Spread(a));
  for (size_t c = 0; c < a.size(); ++c) EXPECT_LE(std::abs(a[c] - b[c]), bound) << what << " class " << c;
}

// The networks themselves, float32 on both devices: logits compared value by value.
TEST(GpuPrecision, Float32ClassifierOnCudaEqualsCpuFloat32) {
  SKIP_WITHOUT_CUDA();
  c10::InferenceMode inference;
  auto c = ReadClassifierConfig(FixturesDir() + "/models/vit-test");
  ASSERT_TRUE(c.ok()) << c.status();
  auto load = [&] {
    VisionTransformer vit(c->vit, c->attention, c->num_classes);
    vit->eval();
    auto weights = SafetensorsFile::Open(c->runtime.weights_path);
    EXPECT_TRUE(weights.ok() && LoadWeights(*vit, *weights).ok());
    return vit;
  };
  VisionTransformer cpu = load(), gpu = load();
  gpu->to(kCuda);
  // A CUDA float32 model's vote, as a loaded model holds it: TF32 off.
  auto vote = Float32MathPolicy::Get().Join(kCuda, torch::kFloat32, /*allow_tf32=*/false);
  ASSERT_FALSE(at::globalContext().allowTF32CuDNN());
  ASSERT_FALSE(at::globalContext().allowTF32CuBLAS());
  torch::manual_seed(7);
  torch::Tensor images = torch::randn({8, 3, c->vit.image_size, c->vit.image_size});
  const int64_t tokens = 1 + c->vit.num_patches();
  const double tol = elliptical::testing::TransformerReorderTolerance(
      c->vit.depth, std::max<int64_t>({c->vit.embed_dim, c->vit.mlp_hidden_dim(), tokens}));
  elliptical::testing::ExpectTensorNear(gpu->forward(images.to(kCuda)), cpu->forward(images),
                                        "vit-test logits, CUDA float32 against CPU float32", tol);
}

TEST(GpuPrecision, Float32SegmenterOnCudaEqualsCpuFloat32) {
  SKIP_WITHOUT_CUDA();
  c10::InferenceMode inference;
  for (const char* model : {"seg-linear", "seg-mask"}) {
    auto c = ReadSegmenterConfig(ModelFixturesDir() + "/segmenter/models/" + model);
    ASSERT_TRUE(c.ok()) << c.status();
    SegmenterNet cpu = elliptical::testing::BuildAndLoad<SegmenterNet>(*c);
    SegmenterNet gpu = elliptical::testing::BuildAndLoad<SegmenterNet>(*c);
    gpu->to(kCuda);
    auto vote = Float32MathPolicy::Get().Join(kCuda, torch::kFloat32, false);
    torch::manual_seed(11);
    torch::Tensor images = torch::randn({2, 3, c->window_size, c->window_size});
    const int64_t tokens = 1 + (c->window_size / c->encoder.patch_size) * (c->window_size / c->encoder.patch_size);
    const double tol = elliptical::testing::TransformerReorderTolerance(
        c->encoder.depth + c->mask_transformer.depth,
        std::max<int64_t>({c->encoder.embed_dim, c->encoder.mlp_hidden_dim(), tokens + c->num_classes}));
    elliptical::testing::ExpectTensorNear(gpu->forward(images.to(kCuda)), cpu->forward(images),
                                          std::string(model) + " logits, CUDA float32 against CPU", tol);
  }
}

// Through the public API: what a loaded model says, and the probabilities it serves.
TEST(GpuPrecision, Float32ModelOnCudaSaysTf32IsOffAndServesCpuResults) {
  SKIP_WITHOUT_CUDA();
  auto cpu = ImageClassifier::Load(FixturesDir() + "/models/vit-test", {"cpu", "float32"});
  auto gpu = ImageClassifier::Load(FixturesDir() + "/models/vit-test", {"cuda", "float32"});
  ASSERT_TRUE(cpu.ok() && gpu.ok()) << gpu.status();
  EXPECT_NE((*gpu)->description().dtype_reason.find("TF32 off"), std::string::npos)
      << (*gpu)->description().dtype_reason;
  EXPECT_FALSE(at::globalContext().allowTF32CuDNN());
  EXPECT_FALSE(at::globalContext().allowTF32CuBLAS());
  const std::vector<RgbImage> images = PatternImages();
  auto a = (*cpu)->Classify(images, false);
  auto b = (*gpu)->Classify(images, false);
  ASSERT_TRUE(a.ok() && b.ok()) << b.status();
  const int blocks = (*cpu)->description().num_layers;
  // Probabilities in [0, 1]: the relative bound is an absolute one, doubled for the softmax.
  const double tol = 2 * elliptical::testing::TransformerReorderTolerance(blocks, 4 * (*cpu)->description().embed_dim);
  for (size_t i = 0; i < images.size(); ++i) {
    for (size_t k = 0; k < (*a)[i].probabilities.size(); ++k) {
      EXPECT_NEAR((*a)[i].probabilities[k], (*b)[i].probabilities[k], tol) << "image " << i << " class " << k;
    }
  }
}

TEST(GpuPrecision, Bfloat16ClassifierOnCudaWithinTheRoundoffBoundAndBatchInvariant) {
  SKIP_WITHOUT_CUDA();
  auto fp32 = ImageClassifier::Load(FixturesDir() + "/models/vit-test", {"cpu", "float32"});
  auto bf16 = ImageClassifier::Load(FixturesDir() + "/models/vit-test", {"cuda", "auto"});
  ASSERT_TRUE(fp32.ok() && bf16.ok()) << bf16.status();
  EXPECT_EQ((*bf16)->description().dtype, "bfloat16") << "auto picks bfloat16 on CUDA";
  EXPECT_EQ((*bf16)->description().dtype_source, "cuda");
  const double tol = elliptical::testing::TransformerBfloat16Tolerance((*fp32)->description().num_layers);
  const std::vector<RgbImage> images = PatternImages();
  auto a = (*fp32)->Classify(images, false);
  auto b = (*bf16)->Classify(images, false);
  ASSERT_TRUE(a.ok() && b.ok()) << b.status();
  for (size_t i = 0; i < images.size(); ++i) {
    ExpectLogProbsWithin((*a)[i].probabilities, (*b)[i].probabilities, tol, "image " + std::to_string(i));
  }
  // Batch invariance: alone, and in a batch of 8 at another position; each within tol of
  // float32, so within 2 tol of the batch of 4.
  std::vector<RgbImage> eight = images;
  eight.insert(eight.begin(), images.rbegin(), images.rend());
  auto big = (*bf16)->Classify(eight, false);
  ASSERT_TRUE(big.ok()) << big.status();
  for (size_t i = 0; i < images.size(); ++i) {
    auto alone = (*bf16)->Classify(absl::MakeConstSpan(&images[i], 1), false);
    ASSERT_TRUE(alone.ok()) << alone.status();
    ExpectLogProbsWithin((*b)[i].probabilities, (*alone)[0].probabilities, 2 * tol, "alone against 4");
    ExpectLogProbsWithin((*b)[i].probabilities, (*big)[4 + i].probabilities, 2 * tol, "in 8 against 4");
  }
}

// Prefill and one decode step of two sequences; rows of logits.
std::vector<std::vector<float>> LmRows(LanguageModel& lm, const std::vector<std::vector<int32_t>>& prompts) {
  std::vector<std::vector<float>> rows;
  EXPECT_TRUE(lm.AllocateCache({}).ok());
  std::vector<std::unique_ptr<LanguageModel::Sequence>> seqs;
  auto first = lm.Prefill(prompts, &seqs);
  EXPECT_TRUE(first.ok()) << first.status();
  if (!first.ok()) return rows;
  std::vector<LanguageModel::Sequence*> live;
  std::vector<int32_t> next_tokens;
  for (size_t i = 0; i < seqs.size(); ++i) {
    live.push_back(seqs[i].get());
    next_tokens.push_back(static_cast<int32_t>(10 + i));
  }
  auto next = lm.Step(live, next_tokens);
  EXPECT_TRUE(next.ok()) << next.status();
  for (auto& row : *first) rows.push_back(row);
  if (next.ok()) {
    for (auto& row : *next) rows.push_back(row);
  }
  return rows;
}

const std::vector<std::vector<int32_t>> kPrompts = {{1, 2, 3, 4, 5, 6}, {7, 8, 9}};

TEST(GpuPrecision, Float32LanguageModelOnCudaEqualsCpuFloat32) {
  SKIP_WITHOUT_CUDA();
  const std::string dir = ModelFixturesDir() + "/lm/models/lm-pre";
  auto cpu = LanguageModel::Load(dir, {"cpu", "float32"});
  auto gpu = LanguageModel::Load(dir, {"cuda", "float32"});
  ASSERT_TRUE(cpu.ok() && gpu.ok()) << gpu.status();
  const LmShape& s = (*cpu)->config().shape;
  const double tol = elliptical::testing::TransformerReorderTolerance(
      s.num_layers, std::max<int64_t>({s.d_model, s.d_inner, static_cast<int64_t>((*cpu)->config().vocab_size)}));
  auto a = LmRows(**cpu, kPrompts), b = LmRows(**gpu, kPrompts);
  ASSERT_EQ(a.size(), b.size());
  for (size_t r = 0; r < a.size(); ++r) {
    for (size_t v = 0; v < a[r].size(); ++v) {
      ASSERT_LE(std::abs(a[r][v] - b[r][v]), tol * std::max(1.0f, std::abs(a[r][v]))) << "row " << r << " token " << v;
    }
  }
}

TEST(GpuPrecision, Bfloat16LanguageModelOnCudaWithinTheBoundAndGreedyAgrees) {
  SKIP_WITHOUT_CUDA();
  const std::string dir = ModelFixturesDir() + "/lm/models/lm-pre";
  auto cpu = LanguageModel::Load(dir, {"cpu", "float32"});
  auto gpu = LanguageModel::Load(dir, {"cuda", "bfloat16"});
  auto gpu_alone = LanguageModel::Load(dir, {"cuda", "bfloat16"});
  ASSERT_TRUE(cpu.ok() && gpu.ok() && gpu_alone.ok()) << gpu.status();
  const double tol = elliptical::testing::TransformerBfloat16Tolerance((*cpu)->description().num_layers);
  auto a = LmRows(**cpu, kPrompts), b = LmRows(**gpu, kPrompts);
  ASSERT_EQ(a.size(), b.size());
  int decided = 0;
  for (size_t r = 0; r < a.size(); ++r) {
    const double bound = tol * std::max(1.0, Spread(a[r]));
    for (size_t v = 0; v < a[r].size(); ++v) {
      ASSERT_LE(std::abs(a[r][v] - b[r][v]), bound) << "row " << r << " token " << v;
    }
    std::vector<float> sorted = a[r];
    std::partial_sort(sorted.begin(), sorted.begin() + 2, sorted.end(), std::greater<float>());
    if (sorted[0] - sorted[1] > 2 * bound) {
      ++decided;
      EXPECT_EQ(std::max_element(a[r].begin(), a[r].end()) - a[r].begin(),
                std::max_element(b[r].begin(), b[r].end()) - b[r].begin())
          << "greedy token of row " << r;
    }
  }
  std::cout << decided << " of " << a.size() << " rows with a decided argmax\n";
  // Batch invariance: the second prompt alone against it beside the first.
  auto alone = LmRows(**gpu_alone, {kPrompts[1]});
  ASSERT_EQ(alone.size(), 2u);
  for (int k = 0; k < 2; ++k) {
    const std::vector<float>& batched = b[k == 0 ? 1 : 3];
    const double bound = 2 * tol * std::max(1.0, Spread(a[k == 0 ? 1 : 3]));
    for (size_t v = 0; v < batched.size(); ++v) {
      ASSERT_LE(std::abs(batched[v] - alone[k][v]), bound) << (k == 0 ? "prefill" : "step") << " token " << v;
    }
  }
}

}  // namespace
}  // namespace elliptical::model
