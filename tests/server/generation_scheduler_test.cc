// The generation scheduler with a fake language model (no LibTorch, fixed logits) and the
// fixture's real SentencePiece tokenizer: admission is bounded by the model's cache slots,
// cancelling frees a slot for the next request, and a model that throws fails its sequences
// with INTERNAL while the scheduler keeps serving. Events are awaited on the streams (with a
// timeout that fails the test instead of hanging it), never ordered with sleeps.
#include <algorithm>
#include <atomic>
#include <stdexcept>

#include <gtest/gtest.h>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "server/generation/generation_scheduler.h"
#include "tests/support/fixtures.h"

namespace elliptical::server {
namespace {

constexpr absl::Duration kPatience = absl::Seconds(30);

// Always prefers token `kToken`; counts live sequences against its slots like the real cache.
class FakeModel final : public model::LanguageModel {
 public:
  static constexpr int32_t kToken = 20;

  FakeModel(int slots, int vocab) : slots_(slots) {
    config_.vocab_size = vocab;
    config_.shape.max_positions = 4096;
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
                                              std::vector<std::vector<model::LayerStats>>*) override {
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
    return std::vector<Logits>(prompts.size(), Peaked());
  }

  absl::StatusOr<std::vector<Logits>> Step(absl::Span<Sequence* const> sequences,
                                           absl::Span<const int32_t>) override {
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
  explicit Scheduler(int slots) {
    auto tokenizer = FixtureTokenizer();
    model = std::make_shared<FakeModel>(slots, tokenizer->vocab_size());
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

}  // namespace
}  // namespace elliptical::server
