// The batcher's threads with a batch function the test controls: Schedule returns before any
// work runs, work queues while every instance is busy and then runs as one batch, instances run
// side by side, the queue delay follows a fake clock, exceptions become INTERNAL, and shutdown
// runs everything accepted. Events are ordered with notifications, never with sleeps; a wait
// that times out fails the test instead of hanging it.
#include <algorithm>
#include <atomic>
#include <deque>
#include <memory>
#include <stdexcept>

#include <gtest/gtest.h>

#include "absl/synchronization/notification.h"
#include "server/batching/dynamic_batcher.h"
#include "tests/support/fake_clock.h"

namespace elliptical::server {
namespace {

using Batcher = DynamicBatcher<int, int>;
constexpr absl::Duration kPatience = absl::Seconds(30);

// A batch function whose calls can be held at their start until the test releases them.
class Model {
 public:
  Batcher::RunBatch Fn() {
    return [this](const std::vector<const int*>& items,
                  const BatchContext& context) -> absl::StatusOr<std::vector<int>> {
      const int instance = context.instance;
      std::vector<int> seen, out;
      for (const int* i : items) {
        seen.push_back(*i);
        out.push_back(2 * *i);
      }
      absl::Notification* gate = nullptr;
      {
        absl::MutexLock lock(&mu_);
        batches_.push_back(seen);
        instances_.push_back(instance);
        ++entered_;
        if (!gates_.empty()) {
          gate = gates_.front();
          gates_.pop_front();
        }
      }
      if (gate) EXPECT_TRUE(gate->WaitForNotificationWithTimeout(kPatience));
      if (!seen.empty() && seen[0] < 0) throw std::runtime_error("negative input");
      return out;
    };
  }
  // The next call to start waits for the returned gate.
  absl::Notification* HoldNext() {
    absl::MutexLock lock(&mu_);
    owned_.push_back(std::make_unique<absl::Notification>());
    gates_.push_back(owned_.back().get());
    return owned_.back().get();
  }
  bool AwaitEntered(int n) {
    absl::MutexLock lock(&mu_);
    auto reached = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return entered_ >= n; };
    return mu_.AwaitWithTimeout(absl::Condition(&reached), kPatience);
  }
  std::vector<std::vector<int>> batches() {
    absl::MutexLock lock(&mu_);
    return batches_;
  }
  std::vector<int> instances() {
    absl::MutexLock lock(&mu_);
    return instances_;
  }
  ~Model() {
    for (const auto& g : owned_) {
      if (!g->HasBeenNotified()) g->Notify();
    }
  }

 private:
  absl::Mutex mu_;
  std::vector<std::vector<int>> batches_ ABSL_GUARDED_BY(mu_);
  std::vector<int> instances_ ABSL_GUARDED_BY(mu_);
  int entered_ ABSL_GUARDED_BY(mu_) = 0;
  std::deque<absl::Notification*> gates_ ABSL_GUARDED_BY(mu_);
  std::vector<std::unique_ptr<absl::Notification>> owned_;  // outlive every batcher thread
};

// One task's outcome, waited for with a notification.
struct Result {
  absl::Notification done;
  absl::StatusOr<std::vector<int>> value = absl::UnknownError("not done");
  BatchTiming timing;
  bool Wait() { return done.WaitForNotificationWithTimeout(kPatience); }
};

Batcher::Task MakeTask(std::vector<int> items, Result* r, uint64_t key = 0) {
  Batcher::Task t;
  t.items = std::move(items);
  t.key = key;
  t.on_done = [r](absl::StatusOr<std::vector<int>> v, const BatchTiming& timing) {
    r->value = std::move(v);
    r->timing = timing;
    r->done.Notify();
  };
  return t;
}

Batcher::Options Options(int max_batch, int instances = 1, const Clock* clock = Clock::Real()) {
  Batcher::Options o;
  o.batching.max_batch_size = max_batch;
  o.batching.max_queued_items = 100;
  o.instances = instances;
  o.clock = clock;
  return o;
}

TEST(DynamicBatcher, ScheduleReturnsBeforeTheWorkRunsAndTheCallbackGetsTheResults) {
  Model model;
  absl::Notification* gate = model.HoldNext();
  Batcher b("m", Options(8), model.Fn());
  Result r;
  ASSERT_TRUE(b.Schedule(MakeTask({21}, &r)).ok());
  ASSERT_TRUE(model.AwaitEntered(1));
  EXPECT_FALSE(r.done.HasBeenNotified()) << "the batch is still held";
  gate->Notify();
  ASSERT_TRUE(r.Wait());
  ASSERT_TRUE(r.value.ok()) << r.value.status();
  EXPECT_EQ(*r.value, std::vector<int>{42});
}

TEST(DynamicBatcher, WorkArrivingWhileTheInstanceComputesRunsAsOneBatchAfterIt) {
  Model model;
  absl::Notification* gate = model.HoldNext();
  Batcher b("m", Options(8), model.Fn());
  Result first, r[3];
  ASSERT_TRUE(b.Schedule(MakeTask({1}, &first)).ok());
  ASSERT_TRUE(model.AwaitEntered(1));  // the only instance is busy
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(b.Schedule(MakeTask({10 + i}, &r[i])).ok());
  EXPECT_EQ(b.queued_items(), 3);
  gate->Notify();
  for (Result& x : r) ASSERT_TRUE(x.Wait());
  ASSERT_TRUE(first.Wait());
  const auto batches = model.batches();
  ASSERT_EQ(batches.size(), 2u);
  EXPECT_EQ(batches[0], std::vector<int>{1}) << "an idle instance did not wait for company";
  EXPECT_EQ(batches[1], (std::vector<int>{10, 11, 12}));
  EXPECT_EQ(r[0].timing.batch_size, 3);
}

TEST(DynamicBatcher, TwoInstancesComputeTwoBatchesAtOnce) {
  Model model;
  absl::Notification* a = model.HoldNext();
  absl::Notification* c = model.HoldNext();
  Batcher b("m", Options(1, /*instances=*/2), model.Fn());
  Result r1, r2;
  ASSERT_TRUE(b.Schedule(MakeTask({1}, &r1)).ok());
  ASSERT_TRUE(b.Schedule(MakeTask({2}, &r2)).ok());
  // Both calls are inside the batch function at the same time: one instance alone would hang
  // here (and fail at the timeout).
  ASSERT_TRUE(model.AwaitEntered(2));
  EXPECT_EQ(b.busy_instances(), 2);
  a->Notify();
  c->Notify();
  ASSERT_TRUE(r1.Wait() && r2.Wait());
  auto instances = model.instances();
  std::sort(instances.begin(), instances.end());
  EXPECT_EQ(instances, (std::vector<int>{0, 1}));
}

// What the owner learns before each batch (to lend a lone batch the idle instances' threads):
// a batch alone with nothing queued hears (1 running, 0 queued); one that starts beside a
// running batch hears 2; one that starts with work still queued behind it hears that work.
TEST(DynamicBatcher, EachBatchStartsKnowingHowManyRunAndHowManyWait) {
  Model model;
  absl::Notification* first_gate = model.HoldNext();
  absl::Notification* second_gate = model.HoldNext();
  struct Start {
    int running, queued;
  };
  absl::Mutex mu;
  std::vector<Start> starts;
  Batcher::Options o = Options(1, /*instances=*/2);
  o.on_batch_start = [&](int, int running, int queued) {
    absl::MutexLock lock(&mu);
    starts.push_back({running, queued});
  };
  Batcher b("m", o, model.Fn());
  Result r1, r2, r3;
  ASSERT_TRUE(b.Schedule(MakeTask({1}, &r1)).ok());
  ASSERT_TRUE(model.AwaitEntered(1));  // alone
  ASSERT_TRUE(b.Schedule(MakeTask({2, 3}, &r2)).ok());  // two items, max batch 1: one waits
  ASSERT_TRUE(model.AwaitEntered(2));
  first_gate->Notify();
  second_gate->Notify();
  ASSERT_TRUE(r1.Wait() && r2.Wait());
  ASSERT_TRUE(b.Schedule(MakeTask({4}, &r3)).ok());
  ASSERT_TRUE(r3.Wait());
  absl::MutexLock lock(&mu);
  ASSERT_EQ(starts.size(), 4u);
  EXPECT_EQ(starts[0].running, 1);
  EXPECT_EQ(starts[0].queued, 0);
  EXPECT_EQ(starts[1].running, 2);  // beside the first
  EXPECT_EQ(starts[1].queued, 1);   // item 3 still waits
  EXPECT_EQ(starts[3].running, 1);  // the last one alone again
  EXPECT_EQ(starts[3].queued, 0);
}

TEST(DynamicBatcher, AConfiguredQueueDelayHoldsAPartialBatchUntilTheClockPassesIt) {
  FakeClock clock;
  Model model;
  Batcher::Options o = Options(4, 1, &clock);
  o.batching.max_queue_delay = absl::Milliseconds(10);
  Batcher b("m", o, model.Fn());
  Result r1, r2;
  ASSERT_TRUE(b.Schedule(MakeTask({1}, &r1)).ok());
  clock.Advance(absl::Milliseconds(4));
  ASSERT_TRUE(b.Schedule(MakeTask({2}, &r2)).ok());
  clock.Advance(absl::Milliseconds(5));  // 9 ms: not yet
  EXPECT_FALSE(r1.done.HasBeenNotified());
  clock.Advance(absl::Milliseconds(1));
  ASSERT_TRUE(r1.Wait() && r2.Wait());
  ASSERT_EQ(model.batches().size(), 1u);
  EXPECT_EQ(model.batches()[0], (std::vector<int>{1, 2}));
  EXPECT_EQ(r1.timing.queue, absl::Milliseconds(10));
}

TEST(DynamicBatcher, AnExceptionFailsItsBatchWithInternalAndTheInstanceKeepsServing) {
  Model model;
  Batcher b("m", Options(1), model.Fn());
  Result bad, good;
  ASSERT_TRUE(b.Schedule(MakeTask({-1}, &bad)).ok());
  ASSERT_TRUE(bad.Wait());
  EXPECT_EQ(bad.value.status().code(), absl::StatusCode::kInternal);
  EXPECT_NE(bad.value.status().message().find("negative input"), std::string::npos);
  ASSERT_TRUE(b.Schedule(MakeTask({3}, &good)).ok());
  ASSERT_TRUE(good.Wait());
  ASSERT_TRUE(good.value.ok());
  EXPECT_EQ(*good.value, std::vector<int>{6});
}

TEST(DynamicBatcher, CancelAnswersAQueuedTaskAtOnceWithoutRunningIt) {
  Model model;
  absl::Notification* gate = model.HoldNext();
  Batcher b("m", Options(8), model.Fn());
  Result busy, victim;
  ASSERT_TRUE(b.Schedule(MakeTask({1}, &busy)).ok());
  ASSERT_TRUE(model.AwaitEntered(1));
  auto handle = b.Schedule(MakeTask({7}, &victim));
  ASSERT_TRUE(handle.ok());
  b.Cancel(*handle);
  ASSERT_TRUE(victim.done.HasBeenNotified()) << "answered in Cancel, not after the busy batch";
  EXPECT_EQ(victim.value.status().code(), absl::StatusCode::kCancelled);
  gate->Notify();
  ASSERT_TRUE(busy.Wait());
  b.Shutdown();
  for (const auto& batch : model.batches()) EXPECT_EQ(std::count(batch.begin(), batch.end(), 7), 0);
}

TEST(DynamicBatcher, ShutdownRunsEverythingAcceptedThenRefuses) {
  FakeClock clock;  // a queue delay that never passes: only the drain can run the tasks
  Model model;
  Batcher::Options o = Options(8, 2, &clock);
  o.batching.max_queue_delay = absl::Hours(1);
  auto b = std::make_unique<Batcher>("m", o, model.Fn());
  Result r[5];
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(b->Schedule(MakeTask({i}, &r[i])).ok());
  b->Shutdown();
  for (Result& x : r) {
    ASSERT_TRUE(x.done.HasBeenNotified());
    EXPECT_TRUE(x.value.ok()) << x.value.status();
  }
  Result late;
  EXPECT_EQ(b->Schedule(MakeTask({9}, &late)).status().code(), absl::StatusCode::kUnavailable);
}

TEST(DynamicBatcher, ARunningBatchLearnsWhenItsOnlyTaskIsCancelledAndStops) {
  absl::Notification started, told;
  Batcher::RunBatch stoppable = [&](const std::vector<const int*>&,
                                    const BatchContext& context) -> absl::StatusOr<std::vector<int>> {
    EXPECT_FALSE(context.Abandoned()) << "a caller waits";
    started.Notify();
    // A long computation in units, asking between them; bounded so that a batcher that never
    // says "abandoned" fails the test instead of hanging it.
    const absl::Time give_up = absl::Now() + kPatience;
    while (!context.Abandoned()) {
      if (absl::Now() > give_up) return std::vector<int>{0};
    }
    told.Notify();
    return absl::CancelledError("stopped");
  };
  Batcher b("m", Options(8), stoppable);
  Result r;
  auto handle = b.Schedule(MakeTask({5}, &r));
  ASSERT_TRUE(handle.ok());
  ASSERT_TRUE(started.WaitForNotificationWithTimeout(kPatience));
  b.Cancel(*handle);
  ASSERT_TRUE(r.Wait());
  EXPECT_TRUE(told.HasBeenNotified()) << "the batch function was told to stop";
  EXPECT_EQ(r.value.status().code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(r.value.status().message(), "the client cancelled the request");
}

}  // namespace
}  // namespace elliptical::server
