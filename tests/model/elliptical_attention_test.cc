// The elliptical metric and attention against values worked out by hand from ELLIPTICAL.md.
#include "model/nets/elliptical_attention.h"

#include <cmath>

#include <gtest/gtest.h>

namespace elliptical::model {
namespace {

// (1, 1, N, D) from rows.
torch::Tensor Heads(std::vector<std::vector<float>> rows) {
  const int64_t n = rows.size(), d = rows[0].size();
  torch::Tensor t = torch::empty({1, 1, n, d});
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < d; ++j) t[0][0][i][j] = rows[i][j];
  return t;
}

TEST(EllipticalMetric, MeanOverTokensThenMaxScaled) {
  // |v - v_prev| = [[1, 0, 2], [0, 4, 0]]; mean over tokens = [0.5, 2, 1]; / max 2.
  torch::Tensor v = Heads({{1, 2, 3}, {4, 5, 6}});
  torch::Tensor v_prev = Heads({{0, 2, 1}, {4, 1, 6}});
  torch::Tensor m = EllipticalMetric(v, v_prev, std::nullopt, MetricEstimator::kMean, 1.0);
  ASSERT_EQ(m.sizes(), (std::vector<int64_t>{1, 1, 3}));
  EXPECT_FLOAT_EQ(m[0][0][0].item<float>(), 0.25f);
  EXPECT_FLOAT_EQ(m[0][0][1].item<float>(), 1.0f);
  EXPECT_FLOAT_EQ(m[0][0][2].item<float>(), 0.5f);
}

TEST(EllipticalMetric, DeltaCancelsOut) {
  torch::Tensor v = Heads({{1, 2, 3}, {4, 5, 6}});
  torch::Tensor v_prev = Heads({{0, 2, 1}, {4, 1, 6}});
  torch::Tensor a = EllipticalMetric(v, v_prev, std::nullopt, MetricEstimator::kMean, 1.0);
  torch::Tensor b = EllipticalMetric(v, v_prev, std::nullopt, MetricEstimator::kMean, 5.0);
  EXPECT_TRUE(torch::allclose(a, b));
}

TEST(EllipticalMetric, MedianOverTokens) {
  // Differences per coordinate over 3 tokens: [1, 3, 8] -> 3 and [2, 2, 0] -> 2; / max 3.
  torch::Tensor v = Heads({{1, 2}, {3, 2}, {8, 0}});
  torch::Tensor v_prev = Heads({{0, 0}, {0, 0}, {0, 0}});
  torch::Tensor m = EllipticalMetric(v, v_prev, std::nullopt, MetricEstimator::kMedian, 1.0);
  EXPECT_FLOAT_EQ(m[0][0][0].item<float>(), 1.0f);
  EXPECT_FLOAT_EQ(m[0][0][1].item<float>(), 2.0f / 3.0f);
}

TEST(EllipticalMetric, IdenticalValuesGiveOnesNotNaN) {
  torch::Tensor v = Heads({{1, 2, 3}, {4, 5, 6}});
  torch::Tensor m = EllipticalMetric(v, v.clone(), std::nullopt, MetricEstimator::kMean, 1.0);
  EXPECT_FALSE(torch::isnan(m).any().item<bool>());
  EXPECT_TRUE(torch::equal(m, torch::ones_like(m)));
}

TEST(EllipticalMetric, PaddingIsLeftOutOfTheMean) {
  // Third token is padding with a huge difference; masked, m equals the 2-token case.
  torch::Tensor v = Heads({{1, 2, 3}, {4, 5, 6}, {100, 0, 0}});
  torch::Tensor v_prev = Heads({{0, 2, 1}, {4, 1, 6}, {0, 0, 0}});
  torch::Tensor mask = torch::tensor({{true, true, false}});
  torch::Tensor m = EllipticalMetric(v, v_prev, mask, MetricEstimator::kMean, 1.0);
  EXPECT_FLOAT_EQ(m[0][0][0].item<float>(), 0.25f);
  EXPECT_FLOAT_EQ(m[0][0][1].item<float>(), 1.0f);
  EXPECT_FLOAT_EQ(m[0][0][2].item<float>(), 0.5f);
  // Real tokens' differences per coordinate are {1, 0}, {0, 4}, {2, 0}: lower medians [0, 0, 0],
  // so the all-zero guard gives ones. With the padding counted they would be [1, 0, 0].
  torch::Tensor median = EllipticalMetric(v, v_prev, mask, MetricEstimator::kMedian, 1.0);
  EXPECT_TRUE(torch::equal(median, torch::ones_like(median)));
}

TEST(EllipticalMetric, EachSampleAndHeadHasItsOwnMetric) {
  torch::manual_seed(0);
  torch::Tensor v = torch::randn({4, 2, 5, 3});
  torch::Tensor v_prev = torch::randn({4, 2, 5, 3});
  torch::Tensor batched = EllipticalMetric(v, v_prev, std::nullopt, MetricEstimator::kMean, 1.0);
  for (int64_t b = 0; b < 4; ++b) {
    torch::Tensor alone = EllipticalMetric(v.slice(0, b, b + 1), v_prev.slice(0, b, b + 1),
                                           std::nullopt, MetricEstimator::kMean, 1.0);
    EXPECT_TRUE(torch::allclose(batched.slice(0, b, b + 1), alone));
  }
  // Max-scaled per (sample, head): every row reaches exactly 1.
  EXPECT_TRUE(torch::allclose(batched.amax(-1), torch::ones({4, 2})));
}

// softmax_k(((m * q) . k) * c) v written out with scalars.
TEST(SelfAttention, EllipticalScoresMatchTheFormula) {
  const int C = 2;  // one head of dimension 2
  SelfAttention attn(C, /*num_heads=*/1, /*qkv_bias=*/false);
  torch::NoGradGuard no_grad;
  // q = x, k = x, v = x; proj = identity.
  torch::Tensor eye = torch::eye(C);
  attn->qkv->weight.copy_(torch::cat({eye, eye, eye}, 0));
  attn->proj->weight.copy_(eye);
  attn->proj->bias.zero_();

  const float x[2][2] = {{1, 0}, {0, 2}};
  torch::Tensor input = torch::tensor({x[0][0], x[0][1], x[1][0], x[1][1]}).view({1, 2, C});
  // v_prev so that |v - v_prev| = [[1, 0], [0, 0]] -> mean [0.5, 0] -> m = [1, 0].
  torch::Tensor v_prev = torch::tensor({0.f, 0.f, 0.f, 2.f}).view({1, 1, 2, C});
  AttentionConfig config;
  config.score_scale = 0.5;
  config.elliptical_layers = {1};
  auto out = attn->forward(input, v_prev, config);
  ASSERT_TRUE(out.metric.defined());
  EXPECT_FLOAT_EQ(out.metric[0][0][0].item<float>(), 1.0f);
  EXPECT_FLOAT_EQ(out.metric[0][0][1].item<float>(), 0.0f);

  const float m[2] = {1, 0};
  const float c = 0.5f;
  for (int i = 0; i < 2; ++i) {
    float s[2], z = 0;
    for (int j = 0; j < 2; ++j) {
      s[j] = std::exp((m[0] * x[i][0] * x[j][0] + m[1] * x[i][1] * x[j][1]) * c);
      z += s[j];
    }
    for (int d = 0; d < C; ++d) {
      const float expected = (s[0] * x[0][d] + s[1] * x[1][d]) / z;
      EXPECT_NEAR(out.out[0][i][d].item<float>(), expected, 1e-6) << "token " << i << " dim " << d;
    }
  }
}

TEST(SelfAttention, WithoutPreviousValuesItIsDotProductOverSqrtD) {
  const int C = 4;
  SelfAttention attn(C, /*num_heads=*/1, /*qkv_bias=*/true);
  torch::manual_seed(3);
  torch::Tensor x = torch::randn({2, 5, C});
  AttentionConfig config;
  config.score_scale = 1.0;  // must not apply to a dot-product layer
  auto out = attn->forward(x, torch::Tensor(), config);
  EXPECT_FALSE(out.metric.defined());

  torch::NoGradGuard no_grad;
  auto qkv = attn->qkv->forward(x).split(C, -1);
  torch::Tensor scores = torch::matmul(qkv[0], qkv[1].transpose(-1, -2)) / std::sqrt(4.0);
  torch::Tensor expected = attn->proj->forward(torch::matmul(scores.softmax(-1), qkv[2]));
  EXPECT_TRUE(torch::allclose(out.out, expected, 1e-5, 1e-6));
}

}  // namespace
}  // namespace elliptical::model
