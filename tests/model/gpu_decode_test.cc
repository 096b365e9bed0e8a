// Decode on a CUDA device with CUDA graphs ("cuda_graphs", model/nets/decode_graphs.h) and
// tokens drawn on the device ("sample_on_device", model/nets/token_draw.h). Labelled `gpu`;
// without a CUDA device each test is skipped and says why.
//   - Replaying a bucket's captured graph computes what the same fixed-shape step computes
//     eagerly: the same kernels on the same shapes, so the same tokens, greedy and sampled, over
//     a long generation whose batch size changes (every bucket captured and replayed).
//   - Through LanguageModel, graphs on and off give the same greedy and seeded sampled tokens.
//     Off, a step runs at its own shape (attention over max(lengths) + 1 positions, n rows), so
//     logits differ in summation order only (float32_tolerance.h: ~1e-5 relative here); a
//     different token needs a top-2 margin (greedy) or a distance from u to a cumulative
//     boundary (sampled) below that, a chance of about 1e-5 per draw: over these few hundred
//     draws a mismatch is a bug far more likely than bad luck.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <random>

#include "model/api/language_model.h"
#include "model/nets/decode_graphs.h"
#include "model/nets/token_draw.h"
#include "tests/support/skip_without_cuda.h"
#include "tests/support/fixtures.h"
#include "tests/support/serving_repository.h"
#include "tests/support/tensor_expect.h"

namespace elliptical::model {
namespace {

using elliptical::testing::kCuda;

std::string LmDir(const std::string& model) { return elliptical::testing::ModelFixturesDir() + "/lm/models/" + model; }

// Per-row sampling settings cycling through greedy, top-k, top-p and plain temperature.
torch::Tensor DrawParams(int n, std::vector<std::mt19937_64>* engines) {
  torch::Tensor p = torch::zeros({4, n}, torch::kFloat64);
  for (int r = 0; r < n; ++r) {
    const int kind = r % 4;
    p[kDrawTemperature][r] = kind == 0 ? 0.0 : kind == 1 ? 0.8 : kind == 2 ? 1.2 : 1.0;
    p[kDrawTopK][r] = kind == 1 ? 8 : 0;
    p[kDrawTopP][r] = kind == 2 ? 0.9 : 0;
    if (kind != 0) p[kDrawUniform][r] = std::generate_canonical<double, 53>((*engines)[r]);
  }
  return p;
}

// A long generation on `net` over slots of its own, the batch size changing (buckets 8, 4, 8, 2,
// 1); returns every drawn token in order.
std::vector<int64_t> Generate(DecoderLm& net, bool capture) {
  constexpr int kSlots = 8;
  const LmConfig& c = net->config();
  LmSlots slots(c, kSlots, torch::TensorOptions(torch::kFloat32).device(kCuda));
  DecodeGraphs graphs(kSlots, kCuda, capture);
  std::vector<std::mt19937_64> engines;
  for (int r = 0; r < kSlots; ++r) engines.emplace_back(100 + r);
  std::vector<int64_t> lengths, next, out;
  auto prefill = [&](int first, int count) {
    torch::Tensor tokens = torch::randint(c.vocab_size, {count, 6}, torch::TensorOptions().dtype(torch::kInt64));
    torch::Tensor lens = torch::full({count}, 6, torch::kInt64);
    LmCache cache;
    net->forward(tokens.to(kCuda), lens.to(kCuda), ScaleMode::kPrefix, &cache);
    slots.Write(first, cache);
    lengths.resize(first + count, 6);
    next.resize(first + count, 1);
  };
  torch::manual_seed(3);
  prefill(0, 6);
  const std::vector<std::pair<int, int>> phases = {{6, 10}, {3, 10}, {7, 10}, {2, 8}, {1, 8}};
  for (const auto& [n, steps] : phases) {
    if (n > static_cast<int>(lengths.size())) prefill(static_cast<int>(lengths.size()), n - static_cast<int>(lengths.size()));
    lengths.resize(n);
    next.resize(n);
    for (int s = 0; s < steps; ++s) {
      FixedStepOutputs o = graphs.Step(*net, slots, next, lengths, DrawParams(n, &engines));
      torch::Tensor drawn = o.drawn.to(torch::kCPU);
      for (int r = 0; r < n; ++r) {
        next[r] = static_cast<int64_t>(drawn[kDrawnId][r].item<double>());
        ++lengths[r];
        out.push_back(next[r]);
      }
    }
  }
  if (capture) EXPECT_EQ(graphs.captured(), 4) << "buckets 8, 4, 2 and 1";
  return out;
}

TEST(GpuDecode, GraphReplayDrawsWhatTheEagerFixedStepDraws) {
  SKIP_WITHOUT_CUDA();
  c10::InferenceMode inference;
  for (const char* model : {"lm-post", "lm-pre"}) {
    auto config = ReadLmConfig(LmDir(model));
    ASSERT_TRUE(config.ok()) << config.status();
    DecoderLm net = elliptical::testing::BuildAndLoad<DecoderLm>(*config);
    net->to(kCuda);
    const std::vector<int64_t> eager = Generate(net, false);
    const std::vector<int64_t> replayed = Generate(net, true);
    EXPECT_EQ(eager.size(), 6u * 10 + 3 * 10 + 7 * 10 + 2 * 8 + 8);
    EXPECT_EQ(replayed, eager) << model;
  }
}

std::unique_ptr<LanguageModel> LoadOnCuda(const std::string& name, bool graphs) {
  const std::string repo = elliptical::testing::BuildDir() + "/gpu_decode_models";
  elliptical::testing::AddModel(repo, name, LmDir("lm-post"),
                                {{"device", "cuda"}, {"sample_on_device", true}, {"cuda_graphs", graphs}});
  auto lm = LanguageModel::Load(repo + "/" + name, {});
  EXPECT_TRUE(lm.ok()) << lm.status();
  if (!lm.ok()) return nullptr;
  CacheOptions cache;
  cache.max_sequences = 8;
  EXPECT_TRUE((*lm)->AllocateCache(cache).ok());
  return *std::move(lm);
}

// Sequences started in batches, stepped together, some released mid-way (the batch shrinks and
// the slots compact), others started: the tokens drawn, greedy and seeded, with every step.
std::vector<int32_t> Converse(LanguageModel& lm) {
  std::vector<std::unique_ptr<LanguageModel::Sequence>> live, started;
  std::vector<std::mt19937_64> engines;
  std::vector<int32_t> next, out;
  std::vector<float> temperature;
  int admitted = 0;
  auto admit = [&](int count) {
    std::vector<std::vector<int32_t>> prompts;
    for (int i = 0; i < count; ++i) prompts.push_back({1 + admitted % 5, 2, 3 + i, 4});
    for (int i = 0; i < count; ++i) {
      engines.emplace_back(500 + admitted + i);
      temperature.push_back((admitted + i) % 2 == 0 ? 0.0f : 0.9f);
    }
    ASSERT_TRUE(lm.Prefill(prompts, &started).ok());
    for (auto& s : started) {
      live.push_back(std::move(s));
      next.push_back(2);
    }
    admitted += count;
  };
  auto step = [&] {
    std::vector<LanguageModel::Sequence*> seqs;
    LanguageModel::DeviceSampling sampling;
    std::vector<std::mt19937_64> after = engines;
    for (size_t i = 0; i < live.size(); ++i) {
      seqs.push_back(live[i].get());
      LanguageModel::DeviceDraw d;
      d.wanted = true;
      d.temperature = temperature[i];
      d.top_k = i % 3 == 0 ? 10 : 0;
      d.top_p = i % 3 == 1 ? 0.85f : 0;
      if (d.temperature > 0) d.u = std::generate_canonical<double, 53>(after[i]);
      sampling.rows.push_back(d);
    }
    auto logits = lm.Step(seqs, next, &sampling);
    ASSERT_TRUE(logits.ok()) << logits.status();
    for (size_t i = 0; i < live.size(); ++i) {
      if (sampling.drawn[i].used_uniform) engines[i] = after[i];
      next[i] = sampling.drawn[i].id;
      out.push_back(next[i]);
    }
  };
  auto release = [&](size_t i) {
    live.erase(live.begin() + i);
    engines.erase(engines.begin() + i);
    next.erase(next.begin() + i);
    temperature.erase(temperature.begin() + i);
  };
  admit(5);
  for (int s = 0; s < 8; ++s) step();
  release(1);
  release(2);
  for (int s = 0; s < 8; ++s) step();
  admit(4);
  for (int s = 0; s < 8; ++s) step();
  while (live.size() > 1) release(0);
  for (int s = 0; s < 8; ++s) step();
  return out;
}

TEST(GpuDecode, GraphsOnAndOffGiveTheSameTokens) {
  SKIP_WITHOUT_CUDA();
  auto on = LoadOnCuda("graphs-on", true);
  auto off = LoadOnCuda("graphs-off", false);
  ASSERT_TRUE(on && off);
  EXPECT_TRUE(on->samples_on_device());
  const std::vector<int32_t> with = Converse(*on), without = Converse(*off);
  EXPECT_EQ(with.size(), 5u * 8 + 3 * 8 + 7 * 8 + 1 * 8);
  EXPECT_EQ(with, without);
}

}  // namespace
}  // namespace elliptical::model
