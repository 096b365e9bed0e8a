// The generation scheduler with a fake language model (no LibTorch, fixed logits) and the
// fixture's real SentencePiece tokenizer: admission is bounded by the model's cache slots,
// cancelling frees a slot for the next request, and a model that throws fails its sequences
// with INTERNAL while the scheduler keeps serving. Events are awaited on the streams (with a
// timeout that fails the test instead of hanging it), never ordered with sleeps.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <map>
#include <stdexcept>

#include <gtest/gtest.h>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "server/generation/generation_scheduler.h"
#include "tests/support/fixtures.h"
#include "tests/support/float32_tolerance.h"
#include "tests/support/serving_repository.h"

namespace elliptical::server {
namespace {

constexpr absl::Duration kPatience = absl::Seconds(30);

// Always prefers token `kToken`; counts live sequences against its slots like the real cache.
class FakeModel final : public model::LanguageModel {
 public:
  static constexpr int32_t kToken = 20;

  FakeModel(int slots, int vocab, int max_positions = 4096) : slots_(slots) {
    config_.vocab_size = vocab;
    config_.shape.max_positions = max_positions;
  }

  class Seq final : public Sequence {
   public:
    Seq(FakeModel* m, int n) : model_(m), n_(n) {}
    ~Seq() override { model_->Release(); }
    int length() const override { return n_; }
    int64_t cache_bytes() const override { return 0; }
    int n_;

   private:
    FakeModel* model_;
  };

  absl::StatusOr<std::vector<Logits>> Prefill(absl::Span<const std::vector<int32_t>> prompts,
                                              std::vector<std::unique_ptr<Sequence>>* sequences,
                                              std::vector<std::vector<model::LayerStats>>*,
                                              PromptScoring* scoring, DeviceSampling*) override {
    {
      absl::MutexLock lock(&mu_);
      if (used_ + static_cast<int>(prompts.size()) > slots_) {
        return absl::ResourceExhaustedError("no free slot: the scheduler admitted too many");
      }
      used_ += static_cast<int>(prompts.size());
      most_used_ = std::max(most_used_, used_);
    }
    sequences->clear();
    for (const auto& p : prompts) sequences->push_back(std::make_unique<Seq>(this, static_cast<int>(p.size())));
    if (scoring) {  // every scored token gets log 1/2
      scoring->logprobs.assign(prompts.size(), {});
      for (size_t i = 0; i < prompts.size(); ++i) {
        if (i < scoring->wanted.size() && scoring->wanted[i]) {
          scoring->logprobs[i].assign(prompts[i].size() - 1, -std::log(2.0f));
        }
      }
    }
    return std::vector<Logits>(prompts.size(), Peaked());
  }

  absl::StatusOr<std::vector<Logits>> Step(absl::Span<Sequence* const> sequences,
                                           absl::Span<const int32_t>, DeviceSampling*) override {
    if (throw_next_.exchange(false)) throw std::runtime_error("kernel exploded");
    if (absl::Notification* gate = gate_.exchange(nullptr)) {
      EXPECT_TRUE(gate->WaitForNotificationWithTimeout(kPatience));
    }
    for (Sequence* s : sequences) ++static_cast<Seq*>(s)->n_;
    return std::vector<Logits>(sequences.size(), Peaked());
  }

  absl::StatusOr<std::vector<float>> TokenLogProbs(absl::Span<const int32_t>, model::ScaleMode) override {
    return absl::UnimplementedError("not needed");
  }
  int64_t CacheBytesPerToken() const override { return 0; }
  const model::ModelDescription& description() const override { return description_; }
  const model::LmConfig& config() const override { return config_; }
  absl::Status AllocateCache(const model::CacheOptions&) override { return absl::OkStatus(); }
  model::CacheUsage cache_usage() const override {
    absl::MutexLock lock(&mu_);
    model::CacheUsage u;
    u.slots = slots_;
    u.slots_used = used_;
    return u;
  }
  int free_slots() const override {
    absl::MutexLock lock(&mu_);
    return slots_ - used_;
  }

  int most_used() const {
    absl::MutexLock lock(&mu_);
    return most_used_;
  }
  void ThrowOnNextStep() { throw_next_ = true; }
  // The next step waits for `gate`.
  void HoldNextStep(absl::Notification* gate) { gate_ = gate; }

 private:
  Logits Peaked() const {
    Logits l(config_.vocab_size, -10.0f);
    l[kToken] = 10.0f;
    return l;
  }
  void Release() {
    absl::MutexLock lock(&mu_);
    --used_;
  }

  const int slots_;
  model::LmConfig config_;
  model::ModelDescription description_;
  mutable absl::Mutex mu_;
  int used_ ABSL_GUARDED_BY(mu_) = 0;
  int most_used_ ABSL_GUARDED_BY(mu_) = 0;
  std::atomic<bool> throw_next_{false};
  std::atomic<absl::Notification*> gate_{nullptr};
};

std::unique_ptr<Tokenizer> FixtureTokenizer() {
  std::string error;
  auto t = Tokenizer::Load(testing::ModelFixturesDir() + "/lm/models/lm-chat/tokenizer.model", &error);
  EXPECT_TRUE(t) << error;
  return t;
}

struct Scheduler {
  explicit Scheduler(int slots, int max_positions = 4096) {
    auto tokenizer = FixtureTokenizer();
    model = std::make_shared<FakeModel>(slots, tokenizer->vocab_size(), max_positions);
    GenerationLimits limits;
    limits.max_running = 16;  // more than the slots: the slots must bound admission
    limits.max_new_tokens_limit = 100000;
    scheduler = std::make_unique<GenerationScheduler>("fake", model, std::move(tokenizer), limits);
  }
  std::shared_ptr<FakeModel> model;
  std::unique_ptr<GenerationScheduler> scheduler;
};

// Reads a stream to its final event; the number of token events and the final status.
std::pair<int, absl::Status> Drain(GenerationStream& stream) {
  int tokens = 0;
  for (;;) {
    GenerationStream::Event e;
    if (!stream.Next(kPatience, &e)) return {tokens, absl::DeadlineExceededError("the stream stalled")};
    if (e.final) return {tokens, e.status};
    if (e.has_token) ++tokens;
  }
}

GenerationParams Params(int tokens) {
  GenerationParams p;
  p.prompt = "Once upon a time";
  p.max_new_tokens = tokens;
  return p;
}

TEST(GenerationScheduler, AdmissionIsBoundedByFreeCacheSlots) {
  Scheduler s(/*slots=*/2);
  std::vector<std::shared_ptr<GenerationStream>> streams;
  for (int i = 0; i < 5; ++i) {
    auto stream = s.scheduler->Submit(Params(20));
    ASSERT_TRUE(stream.ok()) << stream.status();
    streams.push_back(*stream);
  }
  for (auto& stream : streams) {
    auto [tokens, status] = Drain(*stream);
    EXPECT_TRUE(status.ok()) << status;
    EXPECT_EQ(tokens, 20);
  }
  EXPECT_EQ(s.model->most_used(), 2) << "never more sequences than slots, and both slots used";
  EXPECT_EQ(s.model->free_slots(), 2);
}

TEST(GenerationScheduler, CancellingARunningSequenceFreesItsSlotForTheNext) {
  Scheduler s(/*slots=*/1);
  absl::Notification gate;
  s.model->HoldNextStep(&gate);  // the long sequence cannot finish before it is cancelled
  auto endless = s.scheduler->Submit(Params(4000));
  ASSERT_TRUE(endless.ok()) << endless.status();
  GenerationStream::Event first;
  ASSERT_TRUE((*endless)->Next(kPatience, &first));  // prefilled: it holds the only slot
  auto next = s.scheduler->Submit(Params(3));
  ASSERT_TRUE(next.ok());
  (*endless)->Cancel();
  gate.Notify();
  auto [cancelled_tokens, cancelled] = Drain(**endless);
  EXPECT_EQ(cancelled.code(), absl::StatusCode::kCancelled) << cancelled;
  auto [tokens, status] = Drain(**next);  // stalls (and fails) if the slot were still held
  EXPECT_TRUE(status.ok()) << status;
  EXPECT_EQ(tokens, 3);
  EXPECT_EQ(s.scheduler->load().cache.slots_used, 0);
}

TEST(GenerationScheduler, AnExceptionFromTheModelFailsItsSequencesAndServingGoesOn) {
  Scheduler s(/*slots=*/4);
  s.model->ThrowOnNextStep();
  auto victim = s.scheduler->Submit(Params(5));
  ASSERT_TRUE(victim.ok());
  auto [tokens, status] = Drain(**victim);
  EXPECT_EQ(status.code(), absl::StatusCode::kInternal) << status;
  EXPECT_NE(status.message().find("kernel exploded"), std::string::npos) << status;
  auto after = s.scheduler->Submit(Params(5));
  ASSERT_TRUE(after.ok());
  auto [more, ok] = Drain(**after);
  EXPECT_TRUE(ok.ok()) << ok;
  EXPECT_EQ(more, 5);
}

TEST(GenerationScheduler, TheListenerIsCalledForEveryEventAndNotAfterItIsCleared) {
  Scheduler s(/*slots=*/1);
  absl::Notification gate;
  s.model->HoldNextStep(&gate);  // the stream cannot finish before the listener is set
  auto stream = s.scheduler->Submit(Params(4));
  ASSERT_TRUE(stream.ok());
  absl::Mutex mu;
  int calls = 0;
  bool final_seen = false;
  (*stream)->SetListener([&] {
    absl::MutexLock lock(&mu);
    ++calls;
    std::deque<GenerationStream::Event> events;
    (*stream)->Take(&events);
    for (const auto& e : events) final_seen = final_seen || e.final;
  });
  gate.Notify();
  {
    absl::MutexLock lock(&mu);
    ASSERT_TRUE(mu.AwaitWithTimeout(absl::Condition(&final_seen), kPatience));
    EXPECT_GE(calls, 2) << "called at once and as events arrived";
  }
  (*stream)->SetListener(nullptr);
}

// --- Scoring prompts -----------------------------------------------------------------------

// What a stream said: its prompt-scores event (if any), its generated tokens, its final event.
struct Outcome {
  bool scores_seen = false;
  bool scores_before_tokens = true;
  std::vector<GenerationStream::ScoredToken> scores;
  std::vector<int32_t> tokens;
  GenerationStream::Event final;
  bool ended = false;
};

Outcome Collect(GenerationStream& stream) {
  Outcome o;
  for (;;) {
    GenerationStream::Event e;
    if (!stream.Next(kPatience, &e)) return o;
    if (e.final) {
      o.final = std::move(e);
      o.ended = true;
      return o;
    }
    if (e.has_prompt_scores) {
      EXPECT_FALSE(o.scores_seen) << "one prompt-scores event per request";
      EXPECT_FALSE(e.has_token);
      EXPECT_TRUE(e.text.empty()) << "a reader that ignores scores must see nothing in it";
      o.scores_seen = true;
      o.scores_before_tokens = o.tokens.empty();
      o.scores = std::move(e.prompt_scores);
    }
    if (e.has_token) o.tokens.push_back(e.token_id);
  }
}

GenerationParams Scoring(const std::string& text, bool append_eos) {
  GenerationParams p;
  p.prompt = text;
  p.score_only = true;
  p.append_eos = append_eos;
  return p;
}

TEST(GenerationScheduler, AScoreOnlyRequestScoresEveryTokenButTheFirstAndGeneratesNothing) {
  Scheduler s(/*slots=*/2);
  const Tokenizer& tokenizer = s.scheduler->tokenizer();
  const std::string text = "The lighthouse keeper climbed the stairs.";
  auto stream = s.scheduler->Submit(Scoring(text, /*append_eos=*/true));
  ASSERT_TRUE(stream.ok()) << stream.status();
  Outcome o = Collect(**stream);
  ASSERT_TRUE(o.ended);
  EXPECT_TRUE(o.final.status.ok()) << o.final.status;
  std::vector<int32_t> ids = tokenizer.Encode(text);  // no BOS, as the training code
  ids.push_back(tokenizer.eos_id());
  ASSERT_TRUE(o.scores_seen);
  ASSERT_EQ(o.scores.size(), ids.size());
  std::string joined;
  for (size_t i = 0; i < ids.size(); ++i) {
    EXPECT_EQ(o.scores[i].id, ids[i]);
    EXPECT_EQ(o.scores[i].piece, tokenizer.IdToPiece(ids[i]));
    joined += o.scores[i].text;
    if (i == 0) {
      EXPECT_FALSE(o.scores[i].has_logprob);
      EXPECT_TRUE(std::isnan(o.scores[i].logprob));
    } else {
      EXPECT_TRUE(o.scores[i].has_logprob);
      EXPECT_FLOAT_EQ(o.scores[i].logprob, -std::log(2.0f));  // what the fake model scores
    }
  }
  EXPECT_EQ(joined, tokenizer.Decode(ids)) << "the pieces' texts make up the decoded prompt";
  EXPECT_EQ(joined, text);
  EXPECT_TRUE(o.tokens.empty());
  EXPECT_EQ(o.final.generated_tokens, 0);
  EXPECT_EQ(o.final.prompt_tokens, static_cast<int>(ids.size()));
  EXPECT_EQ(o.final.scored_tokens, static_cast<int>(ids.size()) - 1);
  EXPECT_NEAR(o.final.scored_logprob_sum, -std::log(2.0) * (ids.size() - 1), 1e-5);
  EXPECT_NEAR(GenerationStream::Perplexity(o.final.scored_logprob_sum, o.final.scored_tokens), 2.0, 1e-5);
  EXPECT_TRUE(std::isnan(GenerationStream::Perplexity(0, 0)));
  EXPECT_EQ(s.model->free_slots(), 2) << "the slot is held for the prefill only";
}

TEST(GenerationScheduler, ScoringRequestsAreBoundedLikeGeneration) {
  Scheduler s(/*slots=*/1, /*max_positions=*/8);
  const Tokenizer& tokenizer = s.scheduler->tokenizer();
  // Texts of exactly the context, and one more token.
  std::string fits, over, text;
  for (int words = 1; words < 40 && over.empty(); ++words) {
    text += words == 1 ? "the" : " the";
    const size_t n = tokenizer.Encode(text).size();
    if (n == 8) fits = text;
    if (n == 9) over = text;
  }
  ASSERT_FALSE(fits.empty());
  ASSERT_FALSE(over.empty());
  auto refused = s.scheduler->Submit(Scoring(over, false));
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument) << refused.status();
  EXPECT_NE(refused.status().message().find("context"), std::string::npos) << refused.status();
  // The appended end-of-sequence token counts.
  EXPECT_EQ(s.scheduler->Submit(Scoring(fits, true)).status().code(), absl::StatusCode::kInvalidArgument);
  auto accepted = s.scheduler->Submit(Scoring(fits, false));
  ASSERT_TRUE(accepted.ok()) << accepted.status();
  Outcome o = Collect(**accepted);
  EXPECT_TRUE(o.final.status.ok()) << o.final.status;
  EXPECT_EQ(o.scores.size(), 8u);

  GenerationParams generating = Scoring(fits, false);
  generating.max_new_tokens = 3;  // score_only generates nothing: 0 does not mean the default
  EXPECT_EQ(s.scheduler->Submit(generating).status().code(), absl::StatusCode::kInvalidArgument);
  GenerationParams eos_then_generate = Params(3);
  eos_then_generate.append_eos = true;
  EXPECT_EQ(s.scheduler->Submit(eos_then_generate).status().code(), absl::StatusCode::kInvalidArgument);
  GenerationParams empty = Scoring("", true);
  EXPECT_EQ(s.scheduler->Submit(empty).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(GenerationScheduler, AQueuedScoringRequestHonoursCancelAndDeadline) {
  Scheduler s(/*slots=*/1);
  absl::Notification gate;
  s.model->HoldNextStep(&gate);  // the generation holds the only slot until released
  auto holder = s.scheduler->Submit(Params(4000));
  ASSERT_TRUE(holder.ok());
  GenerationStream::Event first;
  ASSERT_TRUE((*holder)->Next(kPatience, &first));
  GenerationParams late = Scoring("Once upon a time", true);
  late.deadline = absl::Now();  // expired by the time a slot frees
  auto expired = s.scheduler->Submit(late);
  ASSERT_TRUE(expired.ok());
  auto cancelled = s.scheduler->Submit(Scoring("Once upon a time", true));
  ASSERT_TRUE(cancelled.ok());
  (*cancelled)->Cancel();
  (*holder)->Cancel();
  gate.Notify();
  Outcome e = Collect(**expired), c = Collect(**cancelled);
  EXPECT_EQ(e.final.status.code(), absl::StatusCode::kDeadlineExceeded) << e.final.status;
  EXPECT_EQ(c.final.status.code(), absl::StatusCode::kCancelled) << c.final.status;
  EXPECT_FALSE(e.scores_seen || c.scores_seen);
  EXPECT_EQ(e.final.scored_tokens, 0);
  EXPECT_EQ(Drain(**holder).second.code(), absl::StatusCode::kCancelled);
}

// The real fixture LM behind a gate: the first prefill waits until the test has queued the
// rest, so that they are prefilled together as one batch. Records each prefill's size.
class GatedModel final : public model::LanguageModel {
 public:
  explicit GatedModel(std::unique_ptr<model::LanguageModel> inner) : inner_(std::move(inner)) {}
  absl::StatusOr<std::vector<Logits>> Prefill(absl::Span<const std::vector<int32_t>> prompts,
                                              std::vector<std::unique_ptr<Sequence>>* sequences,
                                              std::vector<std::vector<model::LayerStats>>* stats,
                                              PromptScoring* scoring, DeviceSampling* sampling) override {
    if (absl::Notification* gate = gate_.exchange(nullptr)) {
      EXPECT_TRUE(gate->WaitForNotificationWithTimeout(kPatience));
    }
    {
      absl::MutexLock lock(&mu_);
      int scored = 0;
      if (scoring) scored = static_cast<int>(std::count(scoring->wanted.begin(), scoring->wanted.end(), true));
      batches_.push_back({static_cast<int>(prompts.size()), scored});
    }
    return inner_->Prefill(prompts, sequences, stats, scoring, sampling);
  }
  absl::StatusOr<std::vector<Logits>> Step(absl::Span<Sequence* const> sequences,
                                           absl::Span<const int32_t> tokens, DeviceSampling* sampling) override {
    return inner_->Step(sequences, tokens, sampling);
  }
  bool samples_on_device() const override { return inner_->samples_on_device(); }
  absl::StatusOr<std::vector<float>> TokenLogProbs(absl::Span<const int32_t> tokens, model::ScaleMode mode) override {
    return inner_->TokenLogProbs(tokens, mode);
  }
  int64_t CacheBytesPerToken() const override { return inner_->CacheBytesPerToken(); }
  const model::ModelDescription& description() const override { return inner_->description(); }
  const model::LmConfig& config() const override { return inner_->config(); }
  absl::Status AllocateCache(const model::CacheOptions& o) override { return inner_->AllocateCache(o); }
  model::CacheUsage cache_usage() const override { return inner_->cache_usage(); }
  int free_slots() const override { return inner_->free_slots(); }

  void HoldFirstPrefill(absl::Notification* gate) { gate_ = gate; }
  std::vector<std::pair<int, int>> batches() const {  // (prompts, scored) per prefill
    absl::MutexLock lock(&mu_);
    return batches_;
  }

 private:
  std::unique_ptr<model::LanguageModel> inner_;
  std::atomic<absl::Notification*> gate_{nullptr};
  mutable absl::Mutex mu_;
  std::vector<std::pair<int, int>> batches_ ABSL_GUARDED_BY(mu_);
};

// The real language model needs LibTorch, which the TSan build (tests/sanitizers) does not link:
// there these tests are left out, the scheduler's own threading is what it checks.
#ifndef ELLIPTICAL_NO_TORCH
struct RealScheduler {
  explicit RealScheduler(const std::string& directory) {
    auto lm = model::LanguageModel::Load(directory, {});
    EXPECT_TRUE(lm.ok()) << lm.status();
    if (!lm.ok()) return;
    model::CacheOptions cache;
    cache.max_sequences = 8;
    EXPECT_TRUE((*lm)->AllocateCache(cache).ok());
    model = std::make_shared<GatedModel>(*std::move(lm));
    GenerationLimits limits;
    limits.max_running = 8;
    scheduler = std::make_unique<GenerationScheduler>("lm", model, FixtureTokenizer(), limits);
  }
  std::shared_ptr<GatedModel> model;
  std::unique_ptr<GenerationScheduler> scheduler;
};

GenerationParams Greedy(const std::string& prompt, int tokens) {
  GenerationParams p;
  p.prompt = prompt;
  p.max_new_tokens = tokens;
  p.sampling.temperature = 0;
  return p;
}

// Scores through the scheduler, prefilled in one batch with generating requests, against a
// forward over each text alone (LanguageModel::TokenLogProbs) in every attention mode of the
// fixture LM with a real tokenizer: elliptical with the prefix estimate (its own config), with
// the segment-wide reference estimate, and dot-product. The generated tokens are those of the
// same requests run alone.
//
// Tolerance: both sides are float32 evaluations of lm-chat (3 blocks, longest reduction the MLP
// width 64) that differ only in summation order (the batch and its padding), so each logit moves
// by at most tau * max(1, |x|) (float32_tolerance.h) and a log-probability x_t - logsumexp(x) by
// at most 2 * tau * X, X the largest max(1, |logit|). lm-chat's random unit-scale weights give
// logits of a few units, except the end-of-sequence logit, which its bias of -100 holds near
// -100 (so that generation never stops early): X = 128 bounds them (tests/integration/
// score_test.py measures about 102 on such texts; language_model_test checks the exact bound
// against the Python reference, where the logits are known). The log-sum-exp's own rounding
// (ReorderTolerance over the vocabulary, relative to |logsumexp| <= |logprob| + X) is added
// once per side.
TEST(GenerationScheduler, ScoresBatchedWithGenerationEqualAFullForwardInEveryMode) {
  const std::string source = testing::ModelFixturesDir() + "/lm/models/lm-chat";
  // Rewritten by every run, never removed: std::filesystem::remove_all, as libtorch.so exports
  // it, crashes.
  const std::string repo = testing::BuildDir() + "/scheduler_scoring_models";
  const std::vector<std::pair<std::string, nlohmann::json>> modes = {
      {"prefix", nlohmann::json::object()},
      {"segment", {{"generation", {{"scale_mode", "segment"}}}}},
      {"segment-median", {{"generation", {{"scale_mode", "segment"}}}, {"attention", {{"estimator", "median"}}}}},
      {"dot-product", {{"attention", {{"mode", "dot_product"}}}}},
  };
  const std::string text_a = "The lighthouse keeper climbed the spiral stairs every evening.";
  const std::string text_b = "Ships that passed the rocky point";
  const std::string prompt = "Once upon a time";
  const double tau = testing::TransformerReorderTolerance(3, 64);
  constexpr double kLargestLogit = 128;
  for (const auto& [mode, patch] : modes) {
    testing::AddModel(repo, mode, source, patch);
    const std::string dir = repo + "/" + mode;
    // The generation alone first: what batching must not change.
    std::vector<int32_t> alone_tokens;
    {
      RealScheduler solo(dir);
      ASSERT_TRUE(solo.scheduler);
      auto g = solo.scheduler->Submit(Greedy(prompt, 8));
      ASSERT_TRUE(g.ok()) << g.status();
      Outcome o = Collect(**g);
      ASSERT_TRUE(o.final.status.ok()) << o.final.status;
      alone_tokens = o.tokens;
      ASSERT_EQ(alone_tokens.size(), 8u) << mode;
    }
    RealScheduler r(dir);
    ASSERT_TRUE(r.scheduler);
    absl::Notification gate;
    r.model->HoldFirstPrefill(&gate);
    auto first = r.scheduler->Submit(Greedy(prompt, 8));  // prefilled alone, behind the gate
    ASSERT_TRUE(first.ok());
    while (r.scheduler->load().waiting > 0) absl::SleepFor(absl::Milliseconds(1));  // taken in
    auto a = r.scheduler->Submit(Scoring(text_a, /*append_eos=*/true));
    GenerationParams echo = Greedy(prompt, 8);
    echo.prompt_logprobs = true;  // echo + logprobs: the prompt's scores, then generation
    auto g = r.scheduler->Submit(echo);
    auto b = r.scheduler->Submit(Scoring(text_b, /*append_eos=*/false));
    ASSERT_TRUE(a.ok() && g.ok() && b.ok());
    gate.Notify();
    Outcome oa = Collect(**a), og = Collect(**g), ob = Collect(**b), ofirst = Collect(**first);
    for (const Outcome* o : {&oa, &og, &ob, &ofirst}) {
      ASSERT_TRUE(o->ended && o->final.status.ok()) << mode << ": " << o->final.status;
    }
    const auto batches = r.model->batches();
    ASSERT_GE(batches.size(), 2u);
    EXPECT_EQ(batches[0], std::make_pair(1, 0)) << mode;
    EXPECT_EQ(batches[1], std::make_pair(3, 3)) << mode << ": scoring and generation share one prefill";

    EXPECT_EQ(ofirst.tokens, alone_tokens) << mode << ": a generation decoded beside scoring requests";
    EXPECT_EQ(og.tokens, alone_tokens) << mode << ": the echoing generation";
    EXPECT_TRUE(og.scores_seen && og.scores_before_tokens) << mode;
    EXPECT_FALSE(ofirst.scores_seen) << mode << ": only requests that ask are scored";
    EXPECT_EQ(og.final.generated_tokens, 8);

    const Tokenizer& tokenizer = r.scheduler->tokenizer();
    const double lse_rounding = testing::ReorderTolerance(2, tokenizer.vocab_size());
    struct Check {
      const Outcome* outcome;
      std::string text;
      bool eos;
    };
    for (const Check& c : {Check{&oa, text_a, true}, Check{&og, prompt, false}, Check{&ob, text_b, false}}) {
      std::vector<int32_t> ids = tokenizer.Encode(c.text);
      if (c.eos) ids.push_back(tokenizer.eos_id());
      auto want = r.model->TokenLogProbs(ids, r.model->config().scale_mode);
      ASSERT_TRUE(want.ok()) << want.status();
      const auto& got = c.outcome->scores;
      ASSERT_EQ(got.size(), ids.size()) << mode << " " << c.text;
      EXPECT_FALSE(got[0].has_logprob);
      double sum = 0;
      for (size_t i = 1; i < ids.size(); ++i) {
        ASSERT_TRUE(got[i].has_logprob);
        EXPECT_EQ(got[i].id, ids[i]);
        const double w = (*want)[i - 1];
        const double tolerance = 2 * tau * kLargestLogit + 2 * lse_rounding * (std::abs(w) + kLargestLogit);
        EXPECT_NEAR(got[i].logprob, w, tolerance) << mode << " \"" << c.text << "\" token " << i;
        sum += got[i].logprob;
      }
      EXPECT_EQ(c.outcome->final.scored_tokens, static_cast<int>(ids.size()) - 1);
      EXPECT_NEAR(c.outcome->final.scored_logprob_sum, sum, 1e-6 * std::max(1.0, std::abs(sum)));
    }
  }
}


// Penalties, a bias and top_logprobs through the scheduler, against a reference computed here
// from the model's own logits: each position's logits come from a fresh prefill of the prompt
// and the tokens generated before it, the penalties are applied as OpenAI and vLLM define them,
// and the log-softmax is taken in double. Tolerance as in the scoring test above: the scheduler's
// logits come from incremental decode steps, the reference's from one forward, float32 both, so
// each logprob may differ by 2 * tau * X plus the log-sum-exp's rounding; the penalties and the
// bias are exact in float32 for these values (a count times a two-decimal penalty is rounded
// once), well inside it.
TEST(GenerationScheduler, PenaltiesBiasAndTopLogprobsMatchAReferenceFromTheModelsLogits) {
  const std::string dir = testing::ModelFixturesDir() + "/lm/models/lm-chat";
  const std::string prompt = "The lamp was lit and the lamp was lit";
  constexpr int kTokens = 12;
  constexpr int kTop = 5;
  RealScheduler r(dir);
  ASSERT_TRUE(r.scheduler);
  const Tokenizer& tokenizer = r.scheduler->tokenizer();

  // Plain greedy first: the penalties must change what it picks.
  std::vector<int32_t> plain;
  {
    auto g = r.scheduler->Submit(Greedy(prompt, kTokens));
    ASSERT_TRUE(g.ok()) << g.status();
    Outcome o = Collect(**g);
    ASSERT_TRUE(o.final.status.ok()) << o.final.status;
    plain = o.tokens;
  }
  ASSERT_EQ(plain.size(), static_cast<size_t>(kTokens));

  GenerationParams params = Greedy(prompt, kTokens);
  params.sampling.presence_penalty = 0.75f;
  params.sampling.frequency_penalty = 0.5f;
  params.sampling.repetition_penalty = 1.25f;
  params.sampling.logit_bias = {{plain[1], -100.0f}, {plain[0], 0.5f}};
  params.sampling.top_logprobs = kTop;
  auto stream = r.scheduler->Submit(params);
  ASSERT_TRUE(stream.ok()) << stream.status();
  std::vector<GenerationStream::Event> tokens;
  for (;;) {
    GenerationStream::Event e;
    ASSERT_TRUE((*stream)->Next(kPatience, &e)) << "the stream stalled";
    if (e.final) {
      ASSERT_TRUE(e.status.ok()) << e.status;
      break;
    }
    if (e.has_token) tokens.push_back(std::move(e));
  }
  ASSERT_EQ(tokens.size(), static_cast<size_t>(kTokens));
  std::vector<int32_t> generated;
  for (const auto& e : tokens) generated.push_back(e.token_id);
  EXPECT_NE(generated, plain) << "the penalties and the bias changed nothing";
  EXPECT_EQ(std::count(generated.begin(), generated.end(), plain[1]), 0) << "a -100 bias all but bans a token";

  // The reference, from a model of its own.
  auto lm = model::LanguageModel::Load(dir, {});
  ASSERT_TRUE(lm.ok()) << lm.status();
  model::CacheOptions cache;
  cache.max_sequences = 1;
  ASSERT_TRUE((*lm)->AllocateCache(cache).ok());
  const std::vector<int32_t> prompt_ids = tokenizer.Encode(prompt);
  const double tau = testing::TransformerReorderTolerance(3, 64);
  constexpr double kLargestLogit = 128;  // as above: the end-of-sequence logit near -100
  const double lse_rounding = testing::ReorderTolerance(2, tokenizer.vocab_size());
  std::map<int32_t, int> counts;
  for (int i = 0; i < kTokens; ++i) {
    std::vector<int32_t> context = prompt_ids;
    context.insert(context.end(), generated.begin(), generated.begin() + i);
    std::vector<std::unique_ptr<model::LanguageModel::Sequence>> sequences;
    auto logits = (*lm)->Prefill({context}, &sequences);
    ASSERT_TRUE(logits.ok()) << logits.status();
    std::vector<double> x((*logits)[0].begin(), (*logits)[0].end());
    sequences.clear();  // the slot goes back for the next position
    for (size_t id = 0; id < x.size(); ++id) {
      const bool in_prompt = std::count(prompt_ids.begin(), prompt_ids.end(), static_cast<int32_t>(id)) > 0;
      const int c = counts.count(static_cast<int32_t>(id)) ? counts[static_cast<int32_t>(id)] : 0;
      if (in_prompt || c > 0) x[id] = x[id] > 0 ? x[id] / 1.25 : x[id] * 1.25;
      if (c > 0) x[id] -= c * 0.5 + 0.75;
    }
    x[plain[1]] -= 100;
    x[plain[0]] += 0.5;
    double max = *std::max_element(x.begin(), x.end()), sum = 0;
    for (double v : x) sum += std::exp(v - max);
    const double log_z = max + std::log(sum);
    std::vector<double> sorted = x;
    std::sort(sorted.rbegin(), sorted.rend());

    const GenerationStream::Event& e = tokens[i];
    const double tolerance = 2 * tau * kLargestLogit + 2 * lse_rounding * (std::abs(sorted[0] - log_z) + kLargestLogit);
    // Greedy picks the reference's best (or one within rounding of it).
    EXPECT_GE(x[e.token_id], sorted[0] - tolerance) << "position " << i;
    EXPECT_NEAR(e.logprob, x[e.token_id] - log_z, tolerance) << "position " << i;
    // The five most likely, each with its reference logprob, none better left out.
    ASSERT_EQ(e.top_logprobs.size(), static_cast<size_t>(kTop)) << "greedy's choice is the first of them";
    EXPECT_EQ(e.top_logprobs[0].id, e.token_id);
    for (const GenerationStream::TopToken& t : e.top_logprobs) {
      EXPECT_NEAR(t.logprob, x[t.id] - log_z, tolerance) << "position " << i << " token " << t.id;
      EXPECT_GE(x[t.id], sorted[kTop] - tolerance) << "position " << i << ": token " << t.id << " is not in the top";
    }
    for (size_t j = 1; j < e.top_logprobs.size(); ++j) {
      EXPECT_GE(e.top_logprobs[j - 1].logprob, e.top_logprobs[j].logprob) << "most likely first";
    }
    ++counts[e.token_id];
  }
}

// The same requests on the fixture LM with tokens drawn on the model's device
// ("sample_on_device": true, forced on the CPU) and drawn on the host: identical tokens and
// logprobs within float32 rounding of a float64 roundoff (tests/model/token_draw_test.cc argues
// why the tokens must be identical). One prefill batch mixes rows the device draws (greedy,
// top-k, top-p, seeded) with rows that need the host path (a penalty, top_logprobs); they then
// decode together, the batch shrinking as they finish.
TEST(GenerationScheduler, DeviceDrawsGiveTheHostSamplersTokens) {
  const std::string source = testing::ModelFixturesDir() + "/lm/models/lm-chat";
  const std::string repo = testing::BuildDir() + "/scheduler_device_draw_models";
  testing::AddModel(repo, "device", source, {{"sample_on_device", true}});
  testing::AddModel(repo, "host", source, {{"sample_on_device", false}});
  struct Run {
    std::vector<std::vector<int32_t>> tokens;
    std::vector<std::vector<float>> logprobs;
  };
  auto run = [&](const std::string& name, bool* on_device) {
    Run out;
    RealScheduler r(repo + "/" + name);
    if (!r.scheduler) return out;
    *on_device = r.model->samples_on_device();
    std::vector<GenerationParams> params(5, Greedy("Once upon a time", 24));
    params[1].sampling.temperature = 0.8f;
    params[1].sampling.top_k = 12;
    params[1].seed = 11;
    params[2].sampling.temperature = 1.1f;
    params[2].sampling.top_p = 0.9f;
    params[2].seed = 12;
    params[2].max_new_tokens = 16;
    params[3].sampling.temperature = 0.9f;
    params[3].sampling.presence_penalty = 0.5f;  // host path
    params[3].seed = 13;
    params[4].sampling.temperature = 1.0f;
    params[4].sampling.top_logprobs = 2;  // host path
    params[4].seed = 14;
    params[4].max_new_tokens = 8;
    absl::Notification gate;
    r.model->HoldFirstPrefill(&gate);
    std::vector<std::shared_ptr<GenerationStream>> streams;
    for (size_t i = 0; i < params.size(); ++i) {
      auto stream = r.scheduler->Submit(params[i]);
      EXPECT_TRUE(stream.ok()) << stream.status();
      if (!stream.ok()) return out;
      streams.push_back(*stream);
      // The first is taken in alone, behind the gate; the others queue and share a prefill.
      while (i == 0 && r.scheduler->load().waiting > 0) absl::SleepFor(absl::Milliseconds(1));
    }
    gate.Notify();
    for (auto& stream : streams) {
      out.tokens.emplace_back();
      out.logprobs.emplace_back();
      for (;;) {
        GenerationStream::Event e;
        EXPECT_TRUE(stream->Next(kPatience, &e)) << "the stream stalled";
        if (e.final) {
          EXPECT_TRUE(e.status.ok()) << e.status;
          break;
        }
        if (e.has_token) {
          out.tokens.back().push_back(e.token_id);
          out.logprobs.back().push_back(e.logprob);
        }
      }
    }
    EXPECT_EQ(r.model->batches().size(), 2u) << "one prefill alone, then one of four";
    return out;
  };
  bool device_on = false, host_on = true;
  const Run device = run("device", &device_on);
  const Run host = run("host", &host_on);
  EXPECT_TRUE(device_on);
  EXPECT_FALSE(host_on);
  ASSERT_EQ(device.tokens.size(), 5u);
  ASSERT_EQ(host.tokens.size(), 5u);
  for (size_t i = 0; i < 5; ++i) {
    EXPECT_EQ(device.tokens[i], host.tokens[i]) << "request " << i;
    ASSERT_EQ(device.logprobs[i].size(), host.logprobs[i].size());
    for (size_t t = 0; t < host.logprobs[i].size(); ++t) {
      const float want = host.logprobs[i][t];
      EXPECT_NEAR(device.logprobs[i][t], want, std::abs(want) * 0x1p-23 + 1e-12) << "request " << i << " token " << t;
    }
  }
  EXPECT_NE(host.tokens[1], host.tokens[0]) << "the seeded requests sampled, not greedy";
}

#endif  // ELLIPTICAL_NO_TORCH

}  // namespace
}  // namespace elliptical::server
