// The decoder LM against the independent Python reference (tests/reference/elliptical_lm.py):
// both scale modes, post-LN and pre-LN, positions, padding; the KV cache against recomputation;
// and generation through the LanguageModel interface, its cache slots included.
#include <gtest/gtest.h>

#include "model/nets/decoder_lm.h"
#include "model/nets/elliptical_attention.h"
#include "model/api/language_model.h"
#include "model/io/weights.h"
#include "server/generation/sampler.h"
#include "tests/support/fixtures.h"
#include "tests/support/float32_tolerance.h"
#include "tests/support/serving_repository.h"
#include "tests/support/tensor_expect.h"

namespace elliptical::model {
namespace {

using elliptical::testing::ExpectTensorNear;
using elliptical::testing::ModelFixturesDir;
using elliptical::testing::ReferenceTensor;

std::string Dir() { return ModelFixturesDir() + "/lm"; }

DecoderLm LoadNet(const std::string& model, AttentionMode mode = AttentionMode::kElliptical) {
  auto config = ReadLmConfig(Dir() + "/models/" + model);
  EXPECT_TRUE(config.ok()) << config.status();
  config->attention.mode = mode;
  return elliptical::testing::BuildAndLoad<DecoderLm>(*config);
}

struct Batch {
  torch::Tensor tokens, lengths;
};

Batch ReferenceBatch(const SafetensorsFile& expected) {
  return {ReferenceTensor(expected, "tokens"), ReferenceTensor(expected, "lengths")};
}

// Compares the real positions of each row only: padded positions are not defined.
void ExpectRowsNear(const torch::Tensor& got, const torch::Tensor& want, const torch::Tensor& lengths,
                    const std::string& what) {
  for (int64_t b = 0; b < lengths.size(0); ++b) {
    const int64_t n = lengths[b].item<int64_t>();
    ExpectTensorNear(got[b].narrow(0, 0, n), want[b].narrow(0, 0, n), what + " row " + std::to_string(b));
  }
}

TEST(DecoderLm, MatchesPythonReferenceInEveryMode) {
  c10::InferenceMode guard;
  auto expected = elliptical::testing::OpenReference(Dir() + "/expected.safetensors");
  Batch batch = ReferenceBatch(expected);
  for (const char* model : {"lm-post", "lm-pre", "lm-desc"}) {
    DecoderLm net = LoadNet(model);
    const std::string m = model;
    ExpectRowsNear(net->forward(batch.tokens, batch.lengths, ScaleMode::kSegment),
                   ReferenceTensor(expected, m + "/segment"), batch.lengths, m + " segment");
    if (m != "lm-desc") {
      ExpectRowsNear(net->forward(batch.tokens, batch.lengths, ScaleMode::kPrefix),
                     ReferenceTensor(expected, m + "/prefix"), batch.lengths, m + " prefix");
    }
    DecoderLm dot = LoadNet(model, AttentionMode::kDotProduct);
    ExpectRowsNear(dot->forward(batch.tokens, batch.lengths, ScaleMode::kSegment),
                   ReferenceTensor(expected, m + "/dot"), batch.lengths, m + " dot-product");
  }
}

TEST(DecoderLm, PaddingAndBatchPositionChangeNothing) {
  c10::InferenceMode guard;
  auto expected = elliptical::testing::OpenReference(Dir() + "/expected.safetensors");
  Batch batch = ReferenceBatch(expected);
  const int64_t rows = batch.tokens.size(0);
  // The fixture LM: 3 blocks, width 32, MLP width 64, 12 tokens (tests/fixtures): the rows differ
  // from each alone only in summation order (float32_tolerance.h).
  const double tolerance = elliptical::testing::TransformerReorderTolerance(3, 64);
  for (ScaleMode mode : {ScaleMode::kSegment, ScaleMode::kPrefix}) {
    DecoderLm net = LoadNet("lm-post");
    torch::Tensor together = net->forward(batch.tokens, batch.lengths, mode);
    // The same batch again runs the same kernels on the same shapes: the same bits.
    EXPECT_TRUE(torch::equal(together, net->forward(batch.tokens, batch.lengths, mode)))
        << ScaleModeName(mode) << ": a batch computed twice differs";
    torch::Tensor order = torch::arange(rows - 1, -1, -1);
    torch::Tensor flipped =
        net->forward(batch.tokens.index_select(0, order), batch.lengths.index_select(0, order), mode);
    for (int64_t b = 0; b < rows; ++b) {
      const int64_t n = batch.lengths[b].item<int64_t>();
      torch::Tensor alone =
          net->forward(batch.tokens[b].narrow(0, 0, n).unsqueeze(0), batch.lengths[b].view({1}), mode)[0];
      const std::string what = std::string(ScaleModeName(mode)) + " row " + std::to_string(b);
      ExpectTensorNear(together[b].narrow(0, 0, n), alone, what + " padded in a batch", tolerance);
      ExpectTensorNear(flipped[rows - 1 - b].narrow(0, 0, n), alone, what + " at another position", tolerance);
    }
  }
}

TEST(DecoderLm, CachedDecodingEqualsRecomputingThePrefix) {
  c10::InferenceMode guard;
  for (const char* model : {"lm-post", "lm-pre"}) {
    DecoderLm net = LoadNet(model);
    const int64_t vocab = net->config().vocab_size;
    // Three prompts of different lengths, then six tokens each, decoded together in slots 0..2
    // of a cache with a spare slot (views of part of the storage, as the server steps).
    torch::Tensor full = torch::randint(vocab, {3, 14}, torch::TensorOptions().dtype(torch::kInt64));
    torch::Tensor pos = torch::tensor({5, 2, 8}, torch::kInt64);
    LmSlots slots(net->config(), 4, torch::TensorOptions(torch::kFloat32));
    LmCache prefill;
    net->forward(full, pos, ScaleMode::kPrefix, &prefill);
    slots.Write(0, prefill);
    const int64_t bytes = slots.bytes();
    for (int step = 0; step < 6; ++step) {
      LmCache view = slots.View(3, pos.max().item<int64_t>() + 1);
      view.lengths = pos;
      torch::Tensor next = full.gather(1, pos.unsqueeze(1)).squeeze(1);
      torch::Tensor logits = net->Decode(next, &view);
      torch::Tensor recomputed = net->forward(full, pos + 1, ScaleMode::kPrefix);
      for (int64_t b = 0; b < 3; ++b) {
        ExpectTensorNear(logits[b], recomputed[b][pos[b].item<int64_t>()],
                         std::string(model) + " step " + std::to_string(step) + " row " + std::to_string(b));
      }
      pos = pos + 1;
    }
    EXPECT_EQ(slots.bytes(), bytes);
  }
}

CacheOptions Slots(int sequences, int64_t bytes = CacheOptions().max_bytes) {
  CacheOptions options;
  options.max_sequences = sequences;
  options.max_bytes = bytes;
  return options;
}

std::unique_ptr<LanguageModel> LoadLm(const std::string& model, CacheOptions cache = {}) {
  auto lm = LanguageModel::Load(Dir() + "/models/" + model, {});
  EXPECT_TRUE(lm.ok()) << lm.status();
  if (!lm.ok()) return nullptr;
  absl::Status allocated = (*lm)->AllocateCache(cache);
  EXPECT_TRUE(allocated.ok()) << allocated;
  return *std::move(lm);
}

std::vector<int32_t> Greedy(LanguageModel& lm, std::vector<int32_t> prompt, int steps) {
  std::vector<std::unique_ptr<LanguageModel::Sequence>> seqs;
  auto logits = lm.Prefill({prompt}, &seqs);
  EXPECT_TRUE(logits.ok()) << logits.status();
  std::vector<int32_t> out;
  for (int i = 0; i < steps; ++i) {
    const auto& l = (*logits)[0];
    const int32_t next = static_cast<int32_t>(std::max_element(l.begin(), l.end()) - l.begin());
    out.push_back(next);
    LanguageModel::Sequence* s = seqs[0].get();
    logits = lm.Step({&s, 1}, {next});
    EXPECT_TRUE(logits.ok()) << logits.status();
  }
  return out;
}

// The next-token scores of `text` computed from scratch (a prefill alone, i.e. a full forward).
void ExpectScoresOf(LanguageModel& lm, const std::vector<int32_t>& text, const LanguageModel::Logits& got,
                    const std::string& what) {
  std::vector<std::unique_ptr<LanguageModel::Sequence>> alone;
  auto want = lm.Prefill({text}, &alone);
  ASSERT_TRUE(want.ok()) << want.status();
  ASSERT_EQ(got.size(), (*want)[0].size());
  for (size_t v = 0; v < got.size(); ++v) {
    ASSERT_NEAR(got[v], (*want)[0][v], 1e-4 * std::max(1.0f, std::abs((*want)[0][v]))) << what << " token " << v;
  }
}

TEST(LanguageModel, SequencesFromDifferentBatchesStepTogether) {
  for (const char* model : {"lm-post", "lm-desc"}) {  // prefix (cached) and segment modes
    auto lm = LoadLm(model);
    ASSERT_TRUE(lm);
    std::vector<std::unique_ptr<LanguageModel::Sequence>> first, second;
    ASSERT_TRUE(lm->Prefill({{1, 2, 3, 4, 5}}, &first).ok());
    ASSERT_TRUE(lm->Prefill({{7, 8}, {9, 10, 11}}, &second).ok());
    std::vector<LanguageModel::Sequence*> all = {first[0].get(), second[0].get(), second[1].get()};
    std::vector<std::vector<int32_t>> texts = {{1, 2, 3, 4, 5}, {7, 8}, {9, 10, 11}};
    for (int step = 0; step < 4; ++step) {
      std::vector<int32_t> next = {int32_t(12 + step), int32_t(20 + step), int32_t(30 + step)};
      auto logits = lm->Step(all, next);
      ASSERT_TRUE(logits.ok()) << logits.status();
      for (size_t i = 0; i < all.size(); ++i) {
        texts[i].push_back(next[i]);
        EXPECT_EQ(all[i]->length(), static_cast<int>(texts[i].size()));
        ExpectScoresOf(*lm, texts[i], (*logits)[i],
                       std::string(model) + " sequence " + std::to_string(i) + " step " + std::to_string(step));
      }
    }
  }
}

// Releasing a middle sequence moves the last slot into its place; the moved sequence and the
// others keep stepping (in a scrambled order, and as a subset that gathers its slots).
TEST(LanguageModel, SequencesKeepTheirCacheWhenAnotherIsReleased) {
  for (const char* model : {"lm-post", "lm-pre", "lm-desc"}) {
    auto lm = LoadLm(model);
    ASSERT_TRUE(lm);
    std::vector<std::vector<int32_t>> texts = {{1, 2, 3}, {4, 5, 6, 7, 8, 9}, {10, 11}, {12, 13, 14, 15}};
    std::vector<std::unique_ptr<LanguageModel::Sequence>> seqs;
    ASSERT_TRUE(lm->Prefill(texts, &seqs).ok());
    int32_t token = 16;
    auto step = [&](const std::vector<size_t>& which, const std::string& what) {
      std::vector<LanguageModel::Sequence*> batch;
      std::vector<int32_t> next;
      for (size_t i : which) {
        batch.push_back(seqs[i].get());
        next.push_back(token++ % lm->config().vocab_size);
      }
      auto logits = lm->Step(batch, next);
      ASSERT_TRUE(logits.ok()) << logits.status();
      for (size_t j = 0; j < which.size(); ++j) {
        texts[which[j]].push_back(next[j]);
        ExpectScoresOf(*lm, texts[which[j]], (*logits)[j],
                       std::string(model) + " " + what + " sequence " + std::to_string(which[j]));
      }
    };
    step({0, 1, 2, 3}, "all");
    seqs[1].reset();
    EXPECT_EQ(lm->cache_usage().slots_used, 3);
    step({3, 0, 2}, "after the release");
    step({2, 3}, "a subset");  // slots 1 and 2: not a prefix of the slots, so gathered
    step({2, 3, 0}, "after the subset");
    seqs[0].reset();
    step({2, 3}, "after a second release");
  }
}

TEST(LanguageModel, CacheIsAllocatedOnceAndSlotsAreCounted) {
  auto lm = LoadLm("lm-post", Slots(5, 1LL << 30));
  ASSERT_TRUE(lm);
  const LmConfig& c = lm->config();
  const LmShape& s = c.shape;
  int64_t elliptical = 0;
  for (int i = 0; i < s.num_layers; ++i) elliptical += c.attention.IsElliptical(i);
  const int64_t per_slot = s.max_positions * lm->CacheBytesPerToken() +
                           elliptical * s.num_heads * s.head_dim * static_cast<int64_t>(sizeof(float));
  CacheUsage usage = lm->cache_usage();
  EXPECT_EQ(usage.slots, 5);
  EXPECT_EQ(usage.slot_tokens, s.max_positions);
  EXPECT_EQ(usage.bytes_allocated, 5 * per_slot);
  EXPECT_EQ(usage.slots_used, 0);
  EXPECT_EQ(lm->free_slots(), 5);

  std::vector<std::unique_ptr<LanguageModel::Sequence>> seqs;
  ASSERT_TRUE(lm->Prefill({{1, 2, 3}, {4, 5}, {6}}, &seqs).ok());
  EXPECT_EQ(lm->free_slots(), 2);
  EXPECT_EQ(lm->cache_usage().bytes_used, 6 * lm->CacheBytesPerToken());
  std::vector<LanguageModel::Sequence*> live = {seqs[0].get(), seqs[1].get(), seqs[2].get()};
  for (int step = 0; step < 40; ++step) ASSERT_TRUE(lm->Step(live, {7, 8, 9}).ok());
  usage = lm->cache_usage();
  EXPECT_EQ(usage.bytes_allocated, 5 * per_slot);
  EXPECT_EQ(usage.bytes_used, (6 + 3 * 40) * lm->CacheBytesPerToken());
  const int64_t sums = per_slot - s.max_positions * lm->CacheBytesPerToken();
  EXPECT_EQ(seqs[1]->cache_bytes(), 42 * lm->CacheBytesPerToken() + sums);

  seqs[1].reset();
  EXPECT_EQ(lm->cache_usage().slots_used, 2);
  EXPECT_EQ(lm->free_slots(), 3);
  EXPECT_EQ(lm->cache_usage().bytes_used, (3 + 1 + 2 * 40) * lm->CacheBytesPerToken());
  seqs.clear();
  EXPECT_EQ(lm->free_slots(), 5);
  EXPECT_EQ(lm->cache_usage().bytes_used, 0);
  EXPECT_EQ(lm->cache_usage().bytes_allocated, 5 * per_slot);
  EXPECT_EQ(lm->AllocateCache({}).code(), absl::StatusCode::kFailedPrecondition);
}

TEST(LanguageModel, BudgetBoundsTheSlots) {
  auto lm = LanguageModel::Load(Dir() + "/models/lm-post", {});
  ASSERT_TRUE(lm.ok()) << lm.status();
  const int64_t per_slot = (*lm)->config().shape.max_positions * (*lm)->CacheBytesPerToken();
  absl::Status small = (*lm)->AllocateCache(Slots(4, per_slot / 2));
  EXPECT_EQ(small.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(small.message().find("bytes"), std::string::npos) << small;
  EXPECT_EQ((*lm)->free_slots(), 0);
  ASSERT_TRUE((*lm)->AllocateCache(Slots(4, per_slot * 5 / 2)).ok());
  EXPECT_EQ((*lm)->cache_usage().slots, 2);
}

TEST(LanguageModel, PrefillNeedsAFreeSlotPerPrompt) {
  for (const char* model : {"lm-post", "lm-desc"}) {
    auto unallocated = LanguageModel::Load(Dir() + "/models/" + model, {});
    ASSERT_TRUE(unallocated.ok());
    std::vector<std::unique_ptr<LanguageModel::Sequence>> seqs;
    EXPECT_EQ((*unallocated)->Prefill({{1}}, &seqs).status().code(), absl::StatusCode::kResourceExhausted);

    auto lm = LoadLm(model, Slots(2));
    ASSERT_TRUE(lm);
    std::vector<std::unique_ptr<LanguageModel::Sequence>> held;
    ASSERT_TRUE(lm->Prefill({{1, 2}}, &held).ok());
    auto full = lm->Prefill({{3}, {4}}, &seqs);
    EXPECT_EQ(full.status().code(), absl::StatusCode::kResourceExhausted) << full.status();
    EXPECT_EQ(lm->free_slots(), 1);
    EXPECT_EQ(held[0]->length(), 2);
    ASSERT_TRUE(lm->Prefill({{3}}, &seqs).ok());
    EXPECT_EQ(lm->free_slots(), 0);
    // What the vector held is released only once the prefill succeeds: it makes no room for it.
    EXPECT_EQ(lm->Prefill({{5}}, &seqs).status().code(), absl::StatusCode::kResourceExhausted);
    held.clear();
    ASSERT_TRUE(lm->Prefill({{5}}, &seqs).ok());
    EXPECT_EQ(lm->free_slots(), 1);
  }
}

TEST(LanguageModel, StepRefusesTheSameSequenceTwice) {
  auto lm = LoadLm("lm-post");
  ASSERT_TRUE(lm);
  std::vector<std::unique_ptr<LanguageModel::Sequence>> seqs;
  ASSERT_TRUE(lm->Prefill({{1, 2}}, &seqs).ok());
  std::vector<LanguageModel::Sequence*> twice = {seqs[0].get(), seqs[0].get()};
  EXPECT_EQ(lm->Step(twice, {3, 4}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(seqs[0]->length(), 2);
}

TEST(LanguageModel, SequencesMayOutliveTheModel) {
  auto lm = LoadLm("lm-post");
  ASSERT_TRUE(lm);
  std::vector<std::unique_ptr<LanguageModel::Sequence>> seqs;
  ASSERT_TRUE(lm->Prefill({{1, 2}, {3}}, &seqs).ok());
  lm.reset();
  seqs.erase(seqs.begin());  // moves the other's slot in a cache nobody else holds
  EXPECT_EQ(seqs[0]->length(), 1);
}

TEST(LanguageModel, GreedyGenerationIsDeterministic) {
  auto lm = LoadLm("lm-pre");
  ASSERT_TRUE(lm);
  EXPECT_EQ(Greedy(*lm, {3, 1, 4, 1, 5}, 8), Greedy(*lm, {3, 1, 4, 1, 5}, 8));
}

TEST(LanguageModel, RejectsWhatItCannotRun) {
  auto lm = LoadLm("lm-post");
  ASSERT_TRUE(lm);
  std::vector<std::unique_ptr<LanguageModel::Sequence>> seqs;
  EXPECT_EQ(lm->Prefill({{}}, &seqs).status().code(), absl::StatusCode::kInvalidArgument);
  auto bad = lm->Prefill({{1, lm->config().vocab_size}}, &seqs);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("outside the vocabulary"), std::string::npos);
  std::vector<int32_t> too_long(lm->config().shape.max_positions + 1, 1);
  EXPECT_EQ(lm->Prefill({too_long}, &seqs).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(lm->free_slots(), lm->cache_usage().slots);
}

TEST(LanguageModel, ScoresTokensInBothModes) {
  auto lm = LanguageModel::Load(Dir() + "/models/lm-post", {});
  ASSERT_TRUE(lm.ok()) << lm.status();
  std::vector<int32_t> text = {5, 9, 2, 7, 7, 1, 3, 8};
  auto prefix = (*lm)->TokenLogProbs(text, ScaleMode::kPrefix);
  auto segment = (*lm)->TokenLogProbs(text, ScaleMode::kSegment);
  ASSERT_TRUE(prefix.ok() && segment.ok());
  ASSERT_EQ(prefix->size(), text.size() - 1);
  for (float lp : *prefix) EXPECT_LT(lp, 0.0f);
  // Position 0 attends to itself alone, so m cannot matter there; later positions see m
  // estimated from different tokens under the two modes.
  EXPECT_FLOAT_EQ((*prefix)[0], (*segment)[0]);
  double gap = 0;
  for (size_t i = 1; i < prefix->size(); ++i) gap += std::abs((*prefix)[i] - (*segment)[i]);
  EXPECT_GT(gap, 1e-4);
}

// A fixture LM under a new name in a scratch directory of the build (rewritten by every run, so
// none accumulate: std::filesystem::remove_all, as libtorch.so exports it, crashes), its config
// patched (another scale mode, dot-product attention): the same weights served another way.
std::string PatchedLm(const std::string& model, const std::string& name, const nlohmann::json& patch) {
  const std::string repo = elliptical::testing::BuildDir() + "/lm_scoring_models";
  elliptical::testing::AddModel(repo, name, Dir() + "/models/" + model, patch);
  return repo + "/" + name;
}

// Prefill's prompt scores against the independent Python reference's logits of the same rows
// (tests/reference/elliptical_lm.py), for every way the LM can attend: elliptical with the
// prefix estimate (post-LN and pre-LN), with the segment-wide reference estimate (ascending and
// descending positions), and dot-product. The rows go in as one padded batch, as the scheduler
// prefills, and one of them does not ask for scores.
//
// Tolerance: the C++ and Python logits differ by |dx_v| <= tau * max(1, |x_v|) (the reorder bound
// of float32_tolerance.h for this 3-block fixture, its longest reduction the MLP width 64); a
// log-probability x_t - logsumexp(x) then moves by at most tau * max(1,|x_t|) from x_t plus
// tau * X from the log-sum-exp (it is 1-Lipschitz in the largest change, X = max_v max(1,|x_v|)),
// so 2 * tau * X; the float32 log-sum-exp itself (a V-term sum, then a log) adds its own
// rounding, ReorderTolerance(2, V) relative to max(1, |logsumexp|), once per side.
TEST(LanguageModel, PrefillScoresThePromptsAsAFullForwardInEveryMode) {
  c10::InferenceMode guard;
  auto expected = elliptical::testing::OpenReference(Dir() + "/expected.safetensors");
  Batch batch = ReferenceBatch(expected);
  struct Case {
    std::string directory, reference;
  };
  const std::vector<Case> cases = {
      {Dir() + "/models/lm-post", "lm-post/prefix"},
      {Dir() + "/models/lm-pre", "lm-pre/prefix"},
      {Dir() + "/models/lm-desc", "lm-desc/segment"},
      {PatchedLm("lm-post", "lm-post-segment", {{"generation", {{"scale_mode", "segment"}}}}), "lm-post/segment"},
      {PatchedLm("lm-post", "lm-post-dot", {{"attention", {{"mode", "dot_product"}}}}), "lm-post/dot"},
      {PatchedLm("lm-desc", "lm-desc-dot", {{"attention", {{"mode", "dot_product"}}}}), "lm-desc/dot"},
  };
  const double tau = elliptical::testing::TransformerReorderTolerance(3, 64);
  for (const Case& c : cases) {
    auto loaded = LanguageModel::Load(c.directory, {});
    ASSERT_TRUE(loaded.ok()) << c.directory << ": " << loaded.status();
    std::unique_ptr<LanguageModel> lm = *std::move(loaded);
    ASSERT_TRUE(lm->AllocateCache({}).ok());
    const int64_t rows = batch.tokens.size(0), vocab = lm->config().vocab_size;
    const double lse_rounding = elliptical::testing::ReorderTolerance(2, vocab);
    std::vector<std::vector<int32_t>> prompts;
    LanguageModel::PromptScoring scoring;
    for (int64_t b = 0; b < rows; ++b) {
      const int64_t n = batch.lengths[b].item<int64_t>();
      std::vector<int32_t> p;
      for (int64_t t = 0; t < n; ++t) p.push_back(static_cast<int32_t>(batch.tokens[b][t].item<int64_t>()));
      prompts.push_back(p);
      scoring.wanted.push_back(b != 1);
    }
    std::vector<std::unique_ptr<LanguageModel::Sequence>> seqs;
    auto plain = lm->Prefill(prompts, &seqs);
    ASSERT_TRUE(plain.ok()) << plain.status();
    seqs.clear();
    auto logits = lm->Prefill(prompts, &seqs, nullptr, &scoring);
    ASSERT_TRUE(logits.ok()) << logits.status();
    // Scoring changes nothing else: the same batch gives the same next-token logits, bit for bit.
    EXPECT_EQ(*logits, *plain) << c.reference;
    ASSERT_EQ(scoring.logprobs.size(), prompts.size());
    torch::Tensor want = ReferenceTensor(expected, c.reference).to(torch::kFloat64);  // (B, L, V)
    for (int64_t b = 0; b < rows; ++b) {
      const std::string what = c.reference + " row " + std::to_string(b);
      if (b == 1) {
        EXPECT_TRUE(scoring.logprobs[b].empty()) << what << " did not ask for scores";
        continue;
      }
      const size_t n = prompts[b].size();
      ASSERT_EQ(scoring.logprobs[b].size(), n - 1) << what;
      if (n < 2) continue;  // a one-token row: nothing to score
      // The text alone (TokenLogProbs: a forward over it, no batch, no cache) differs from the
      // batched prefill only in summation order: the same bound.
      auto alone = lm->TokenLogProbs(prompts[b], lm->config().scale_mode);
      ASSERT_TRUE(alone.ok()) << alone.status();
      ASSERT_EQ(alone->size(), n - 1) << what;
      for (size_t t = 1; t < n; ++t) {
        torch::Tensor x = want[b][t - 1];
        const double lse = x.logsumexp(0).item<double>();
        const double ref = x[prompts[b][t]].item<double>() - lse;
        const double big = std::max(1.0, x.abs().max().item<double>());
        const double tolerance = 2 * tau * big + 2 * lse_rounding * std::max(1.0, std::abs(lse));
        EXPECT_NEAR(scoring.logprobs[b][t - 1], ref, tolerance) << what << " token " << t;
        EXPECT_NEAR(scoring.logprobs[b][t - 1], (*alone)[t - 1], tolerance) << what << " alone, token " << t;
      }
    }
  }
}

TEST(LanguageModel, SampleOnDeviceFollowsTheConfig) {
  auto cpu_default = LanguageModel::Load(Dir() + "/models/lm-post", {});
  ASSERT_TRUE(cpu_default.ok()) << cpu_default.status();
  EXPECT_FALSE((*cpu_default)->samples_on_device()) << "\"auto\" is off on the CPU";
  auto forced = LanguageModel::Load(PatchedLm("lm-post", "lm-post-device-draws", {{"sample_on_device", true}}), {});
  ASSERT_TRUE(forced.ok()) << forced.status();
  EXPECT_TRUE((*forced)->samples_on_device());
  for (const nlohmann::json& bad : {nlohmann::json("yes"), nlohmann::json(1)}) {
    auto refused = LanguageModel::Load(PatchedLm("lm-post", "lm-post-bad-draws", {{"sample_on_device", bad}}), {});
    ASSERT_FALSE(refused.ok());
    EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(refused.status().message().find("sample_on_device"), std::string::npos) << refused.status();
  }
  auto graphs = LanguageModel::Load(PatchedLm("lm-post", "lm-post-bad-graphs", {{"cuda_graphs", "on"}}), {});
  ASSERT_FALSE(graphs.ok());
  EXPECT_NE(graphs.status().message().find("cuda_graphs"), std::string::npos) << graphs.status();
  // On the CPU "cuda_graphs" loads and says it has no effect (one directory for CPU and GPU nodes).
  auto graphs_on_cpu = LanguageModel::Load(PatchedLm("lm-post", "lm-post-graphs", {{"cuda_graphs", true}}), {});
  ASSERT_TRUE(graphs_on_cpu.ok()) << graphs_on_cpu.status();
  EXPECT_NE((*graphs_on_cpu)->description().dtype_reason.find("cuda_graphs has no effect on the CPU"),
            std::string::npos)
      << (*graphs_on_cpu)->description().dtype_reason;
  ASSERT_TRUE((*graphs_on_cpu)->AllocateCache({}).ok());
  EXPECT_EQ(Greedy(**graphs_on_cpu, {3, 1, 4}, 4).size(), 4u);
  auto segment_graphs = LanguageModel::Load(PatchedLm("lm-desc", "lm-desc-graphs", {{"cuda_graphs", true}}), {});
  ASSERT_FALSE(segment_graphs.ok());
  EXPECT_EQ(segment_graphs.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(segment_graphs.status().message().find("cuda_graphs"), std::string::npos) << segment_graphs.status();
}

// Prefill and Step with some rows drawn on the device (model/nets/token_draw.h) against the same
// calls on a twin model (the same weights) that returns every row's logits, sampled on the host
// by server/generation/sampler.cc: the same batch computes the same logits bit for bit, so the
// rows left on the host get identical logits, and the drawn rows the host sampler's token (exact:
// tests/model/token_draw_test.cc argues why) and logprob (float64 roundoff, then float32).
TEST(LanguageModel, DeviceDrawsEqualTheHostSamplerInMixedBatches) {
  for (const char* model : {"lm-post", "lm-desc"}) {  // prefix (cached) and segment modes
    const std::string m = model;
    auto device = LoadLm(m);
    auto host = LoadLm(m);
    ASSERT_TRUE(device && host);
    const std::vector<std::vector<int32_t>> prompts = {{1, 2, 3, 4, 5}, {7, 8}, {9, 10, 11}, {4}, {6, 6, 6}};
    // Rows 1 and 3 need the host (as penalties or top_logprobs would); the rest are drawn.
    std::vector<server::SamplingParams> params(prompts.size());
    params[0].temperature = 0;
    params[2].temperature = 0.9f;
    params[2].top_k = 6;
    params[4].temperature = 1.2f;
    params[4].top_p = 0.8f;
    const std::vector<bool> drawn = {true, false, true, false, true};
    std::vector<std::mt19937_64> engines;
    for (size_t i = 0; i < prompts.size(); ++i) engines.emplace_back(17 + i);

    std::vector<std::unique_ptr<LanguageModel::Sequence>> dev_seqs, host_seqs;
    std::vector<int32_t> next(prompts.size());
    int compared = 0;
    for (int step = 0; step <= 12; ++step) {
      LanguageModel::DeviceSampling sampling;
      std::vector<std::mt19937_64> after = engines;
      for (size_t i = 0; i < prompts.size(); ++i) {
        LanguageModel::DeviceDraw d;
        d.wanted = drawn[i];
        d.temperature = params[i].temperature;
        d.top_k = params[i].top_k;
        d.top_p = params[i].top_p;
        if (d.temperature > 0) d.u = std::generate_canonical<double, 53>(after[i]);
        sampling.rows.push_back(d);
      }
      absl::StatusOr<std::vector<LanguageModel::Logits>> got, want;
      if (step == 0) {
        got = device->Prefill(prompts, &dev_seqs, nullptr, nullptr, &sampling);
        want = host->Prefill(prompts, &host_seqs);
      } else {
        std::vector<LanguageModel::Sequence*> d, h;
        for (size_t i = 0; i < prompts.size(); ++i) {
          d.push_back(dev_seqs[i].get());
          h.push_back(host_seqs[i].get());
        }
        got = device->Step(d, next, &sampling);
        want = host->Step(h, next);
      }
      ASSERT_TRUE(got.ok() && want.ok()) << got.status() << " " << want.status();
      ASSERT_EQ(sampling.drawn.size(), prompts.size());
      for (size_t i = 0; i < prompts.size(); ++i) {
        const std::string what = m + " step " + std::to_string(step) + " row " + std::to_string(i);
        const std::mt19937_64 before = engines[i];
        server::SampledToken token = server::Sample((*want)[i], params[i], &engines[i]);
        if (!drawn[i]) {
          EXPECT_EQ((*got)[i], (*want)[i]) << what << ": a host row's logits";
        } else {
          EXPECT_TRUE((*got)[i].empty()) << what << ": a drawn row sends no logits";
          const LanguageModel::DrawnToken& d = sampling.drawn[i];
          ASSERT_EQ(d.id, token.id) << what;
          EXPECT_NEAR(d.logprob, token.logprob, std::abs(token.logprob) * 0x1p-23 + 1e-12) << what;
          EXPECT_TRUE(engines[i] == (d.used_uniform ? after[i] : before)) << what << ": the engine";
          ++compared;
        }
        next[i] = token.id;
      }
    }
    EXPECT_EQ(compared, 3 * 13) << m;
  }
}

TEST(LanguageModel, ScoringAOneTokenPromptGivesNoScores) {
  auto lm = LoadLm("lm-post");
  ASSERT_TRUE(lm);
  LanguageModel::PromptScoring scoring{{true, true}, {}};
  std::vector<std::unique_ptr<LanguageModel::Sequence>> seqs;
  ASSERT_TRUE(lm->Prefill({{4}, {4, 5}}, &seqs, nullptr, &scoring).ok());
  ASSERT_EQ(scoring.logprobs.size(), 2u);
  EXPECT_TRUE(scoring.logprobs[0].empty());
  ASSERT_EQ(scoring.logprobs[1].size(), 1u);
  EXPECT_LT(scoring.logprobs[1][0], 0.0f);
}

TEST(PrefixEllipticalMetric, IdenticalValuesGiveOnesNotNaN) {
  torch::Tensor v = torch::randn({2, 3, 5, 4});
  torch::Tensor sum;
  torch::Tensor m = PrefixEllipticalMetric(v, v.clone(), torch::Tensor(), 1.0, &sum);
  EXPECT_FALSE(m.isnan().any().item<bool>());
  EXPECT_TRUE(torch::equal(m, torch::ones_like(m)));
}

TEST(PrefixEllipticalMetric, PositionTUsesOnlyTokensUpToT) {
  torch::Tensor v = torch::randn({1, 2, 6, 4}), prev = torch::randn({1, 2, 6, 4});
  torch::Tensor sum;
  torch::Tensor m = PrefixEllipticalMetric(v, prev, torch::Tensor(), 5.0, &sum);
  for (int64_t t = 0; t < 6; ++t) {
    torch::Tensor want = EllipticalMetric(v.narrow(2, 0, t + 1), prev.narrow(2, 0, t + 1), std::nullopt,
                                          MetricEstimator::kMean, 5.0);
    ExpectTensorNear(m.select(2, t), want, "position " + std::to_string(t), 1e-6);
  }
  ExpectTensorNear(sum, ((v - prev).abs() / 5.0).sum(2), "running sum", 1e-6);
}

TEST(DecoderLm, ConfigThatDoesNotMatchWeightsNamesTheTensor) {
  auto config = ReadLmConfig(Dir() + "/models/lm-post");
  ASSERT_TRUE(config.ok());
  config->shape.num_layers += 1;
  config->attention.elliptical_layers.push_back(config->shape.num_layers - 1);
  DecoderLm net(*config);
  auto weights = SafetensorsFile::Open(config->runtime.weights_path);
  ASSERT_TRUE(weights.ok());
  absl::Status s = LoadWeights(*net, *weights);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  const std::string missing = "layers." + std::to_string(config->shape.num_layers - 1) + ".attn.q_net.weight";
  EXPECT_NE(s.message().find(missing), std::string::npos) << s;
}

}  // namespace
}  // namespace elliptical::model
