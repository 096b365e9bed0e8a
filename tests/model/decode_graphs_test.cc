// The fixed-shape decode step that CUDA graphs capture (model/nets/decode_graphs.h), run eagerly
// on the CPU, against today's variable-shape step (LmSlots::View over max(lengths) + 1
// positions): the same logits within the float32 reorder bound and the same greedy tokens where
// the top-2 margin exceeds it; and the padding rows' writes into free slots are overwritten by
// the next prefill.
#include <gtest/gtest.h>

#include "model/nets/decode_graphs.h"
#include "model/nets/token_draw.h"
#include "tests/support/fixtures.h"
#include "tests/support/float32_tolerance.h"
#include "tests/support/tensor_expect.h"

namespace elliptical::model {
namespace {

DecoderLm LoadNet(const std::string& model) {
  auto config = ReadLmConfig(elliptical::testing::ModelFixturesDir() + "/lm/models/" + model);
  EXPECT_TRUE(config.ok()) << config.status();
  return elliptical::testing::BuildAndLoad<DecoderLm>(*config);
}

TEST(DecodeGraphs, BucketsArePowersOfTwoUpToTheSlots) {
  EXPECT_EQ(DecodeGraphs::Bucket(1, 16), 1);
  EXPECT_EQ(DecodeGraphs::Bucket(3, 16), 4);
  EXPECT_EQ(DecodeGraphs::Bucket(8, 16), 8);
  EXPECT_EQ(DecodeGraphs::Bucket(9, 16), 16);
  EXPECT_EQ(DecodeGraphs::Bucket(5, 6), 6);  // capped at the slots: padding needs free slots
  EXPECT_EQ(DecodeGraphs::Bucket(6, 6), 6);
}

// Prompts into slots first.. of both caches (each cache's own prefill of the same batch).
void Prefill(DecoderLm& net, std::vector<LmSlots*> caches, int first, const std::vector<std::vector<int64_t>>& prompts,
             std::vector<int64_t>* lengths) {
  int64_t longest = 0;
  for (const auto& p : prompts) longest = std::max<int64_t>(longest, static_cast<int64_t>(p.size()));
  torch::Tensor tokens = torch::zeros({static_cast<int64_t>(prompts.size()), longest}, torch::kInt64);
  torch::Tensor lens = torch::empty({static_cast<int64_t>(prompts.size())}, torch::kInt64);
  for (size_t b = 0; b < prompts.size(); ++b) {
    for (size_t t = 0; t < prompts[b].size(); ++t) tokens[b][t] = prompts[b][t];
    lens[b] = static_cast<int64_t>(prompts[b].size());
    lengths->resize(first + b + 1);
    (*lengths)[first + b] = static_cast<int64_t>(prompts[b].size());
  }
  LmCache cache;
  net->forward(tokens, lens, ScaleMode::kPrefix, &cache);
  for (LmSlots* slots : caches) slots->Write(first, cache);
}

// Tolerance: both steps compute every real term of every sum; the fixed one also attends over
// masked positions, whose softmax weights are exactly 0 (exp of -inf) times finite cached values,
// and runs at a padded batch size. Only summation order differs: the reorder bound of
// float32_tolerance.h for this 3-block fixture (longest real reduction: the MLP width 64).
TEST(DecodeGraphs, FixedShapeStepEqualsTheVariableShapeStep) {
  c10::InferenceMode guard;
  const double tau = elliptical::testing::TransformerReorderTolerance(3, 64);
  for (const char* model : {"lm-post", "lm-pre"}) {
    DecoderLm net = LoadNet(model);
    constexpr int kSlots = 8;
    LmSlots variable(net->config(), kSlots, torch::TensorOptions(torch::kFloat32));
    LmSlots fixed(net->config(), kSlots, torch::TensorOptions(torch::kFloat32));
    DecodeGraphs graphs(kSlots, torch::kCPU, /*capture=*/true);  // no capture on the CPU: eager
    std::vector<int64_t> lengths;
    Prefill(net, {&variable, &fixed}, 0, {{1, 2, 3, 4, 5}, {7, 8}, {9, 10, 11}, {4}, {6, 6, 6, 6}}, &lengths);
    std::vector<int64_t> next = {3, 5, 7, 9, 11};
    int compared = 0, margins = 0;
    // The live set: five sequences, then three (the last two released), then six (three
    // prefilled into the freed slots 3..5, which padding rows of the three-row steps wrote
    // into), then one: buckets 8, 4, 8, 1.
    const std::vector<std::pair<int, int>> phases = {{5, 4}, {3, 4}, {6, 5}, {1, 3}};
    for (const auto& [n, steps] : phases) {
      if (n == 6) Prefill(net, {&variable, &fixed}, 3, {{2, 4, 6, 8, 10, 12}, {1}, {5, 5}}, &lengths);
      next.resize(n, 1);
      lengths.resize(n);
      for (int step = 0; step < steps; ++step) {
        const std::string what = std::string(model) + " n=" + std::to_string(n) + " step " + std::to_string(step);
        torch::Tensor pos = torch::tensor(std::vector<int64_t>(lengths.begin(), lengths.begin() + n), torch::kInt64);
        LmCache view = variable.View(n, pos.max().item<int64_t>() + 1);
        view.lengths = pos;
        torch::Tensor want = net->Decode(torch::tensor(next, torch::kInt64), &view);
        FixedStepOutputs got = graphs.Step(*net, fixed, next, lengths, torch::zeros({4, n}, torch::kFloat64));
        ASSERT_EQ(got.logits.sizes(), want.sizes()) << what;
        ASSERT_EQ(got.drawn.sizes(), torch::IntArrayRef({3, n})) << what;
        elliptical::testing::ExpectTensorNear(got.logits, want, what, tau);
        for (int r = 0; r < n; ++r) {
          auto [top, ids] = want[r].topk(2);
          const double margin = (top[0] - top[1]).item<double>();
          const double bound = 2 * tau * std::max(1.0, top.abs().max().item<double>());
          const int64_t greedy = ids[0].item<int64_t>();
          if (margin > bound) {
            EXPECT_EQ(static_cast<int64_t>(got.drawn[kDrawnId][r].item<double>()), greedy) << what << " row " << r;
            ++margins;
          }
          next[r] = greedy;
          ++lengths[r];
          ++compared;
        }
      }
      ASSERT_LE(lengths[0] + 1, net->config().shape.max_positions);
    }
    EXPECT_EQ(compared, 5 * 4 + 3 * 4 + 6 * 5 + 1 * 3);
    EXPECT_GT(margins, compared / 2) << "most margins are wide enough to compare tokens";
  }
}

}  // namespace
}  // namespace elliptical::model
