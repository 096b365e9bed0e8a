// The dynamic batcher alone, with a batch function that records what it was given: batch
// formation, the queue delay, compatibility keys, FIFO order, splitting, overload, deadlines,
// cancellation and draining.
#include <atomic>
#include <future>
#include <thread>

#include <gtest/gtest.h>

#include "server/batching/dynamic_batcher.h"

namespace elliptical::server {
namespace {

using Batcher = DynamicBatcher<int, int>;

// Doubles each item; remembers every batch; can be held to let a queue build up.
struct Recorder {
  absl::Mutex mu;
  std::vector<std::vector<int>> batches;
  std::atomic<bool> hold{false};

  Batcher::RunBatch Fn() {
    return [this](const std::vector<const int*>& items) -> absl::StatusOr<std::vector<int>> {
      while (hold) std::this_thread::sleep_for(std::chrono::milliseconds(1));
      std::vector<int> seen, out;
      for (const int* i : items) {
        seen.push_back(*i);
        out.push_back(2 * *i);
      }
      absl::MutexLock lock(&mu);
      batches.push_back(seen);
      return out;
    };
  }
};

absl::Time Never() { return absl::InfiniteFuture(); }

TEST(DynamicBatcher, ConcurrentRequestsShareABatchAndGetTheirOwnResults) {
  Recorder r;
  Batcher b("m", {.max_batch_size = 4, .max_queue_delay = absl::Seconds(5), .max_queued_items = 100}, r.Fn());
  std::vector<std::future<absl::StatusOr<std::vector<int>>>> calls;
  for (int i = 0; i < 4; ++i) {
    calls.push_back(std::async(std::launch::async, [&b, i] {
      BatchTiming t;
      auto out = b.Run({i}, 0, Never(), nullptr, &t);
      EXPECT_EQ(t.batch_size, 4);
      return out;
    }));
  }
  for (int i = 0; i < 4; ++i) {
    auto out = calls[i].get();
    ASSERT_TRUE(out.ok());
    EXPECT_EQ(*out, std::vector<int>{2 * i});
  }
  EXPECT_EQ(r.batches.size(), 1u) << "a full batch runs without waiting for the delay";
}

TEST(DynamicBatcher, PartialBatchRunsAfterTheQueueDelay) {
  Recorder r;
  Batcher b("m", {.max_batch_size = 8, .max_queue_delay = absl::Milliseconds(50), .max_queued_items = 100}, r.Fn());
  const absl::Time start = absl::Now();
  auto out = b.Run({1, 2, 3}, 0, Never(), nullptr, nullptr);
  const absl::Duration took = absl::Now() - start;
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(*out, (std::vector<int>{2, 4, 6}));
  EXPECT_GE(took, absl::Milliseconds(45));
  EXPECT_LT(took, absl::Seconds(2));
}

TEST(DynamicBatcher, LargeRequestSpansBatchesInOrder) {
  Recorder r;
  Batcher b("m", {.max_batch_size = 3, .max_queue_delay = absl::ZeroDuration(), .max_queued_items = 100}, r.Fn());
  auto out = b.Run({1, 2, 3, 4, 5, 6, 7}, 0, Never(), nullptr, nullptr);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(*out, (std::vector<int>{2, 4, 6, 8, 10, 12, 14}));
  ASSERT_EQ(r.batches.size(), 3u);
  EXPECT_EQ(r.batches[0], (std::vector<int>{1, 2, 3}));
  EXPECT_EQ(r.batches[2], (std::vector<int>{7}));
}

TEST(DynamicBatcher, DifferentKeysNeverShareABatchAndTheOldestGoesFirst) {
  Recorder r;
  r.hold = true;
  Batcher b("m", {.max_batch_size = 8, .max_queue_delay = absl::ZeroDuration(), .max_queued_items = 100}, r.Fn());
  auto blocker = std::async(std::launch::async, [&] { return b.Run({0}, 9, Never(), nullptr, nullptr); });
  std::this_thread::sleep_for(std::chrono::milliseconds(30));  // the worker holds batch {0}
  auto a = std::async(std::launch::async, [&] { return b.Run({10, 11}, 1, Never(), nullptr, nullptr); });
  std::this_thread::sleep_for(std::chrono::milliseconds(10));
  auto c = std::async(std::launch::async, [&] { return b.Run({20}, 2, Never(), nullptr, nullptr); });
  std::this_thread::sleep_for(std::chrono::milliseconds(10));
  auto d = std::async(std::launch::async, [&] { return b.Run({12}, 1, Never(), nullptr, nullptr); });
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  r.hold = false;
  ASSERT_TRUE(blocker.get().ok() && a.get().ok() && c.get().ok() && d.get().ok());
  ASSERT_EQ(r.batches.size(), 3u);
  EXPECT_EQ(r.batches[1], (std::vector<int>{10, 11, 12})) << "key 1 was oldest: it goes first, with its later item";
  EXPECT_EQ(r.batches[2], (std::vector<int>{20}));
}

TEST(DynamicBatcher, FullQueueIsResourceExhaustedAndAcceptedWorkCompletes) {
  Recorder r;
  r.hold = true;
  Batcher b("m", {.max_batch_size = 1, .max_queue_delay = absl::ZeroDuration(), .max_queued_items = 2}, r.Fn());
  auto running = std::async(std::launch::async, [&] { return b.Run({1}, 0, Never(), nullptr, nullptr); });
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  auto queued = std::async(std::launch::async, [&] { return b.Run({2, 3}, 0, Never(), nullptr, nullptr); });
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  auto refused = b.Run({4}, 0, Never(), nullptr, nullptr);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(refused.status().message().find("overloaded"), std::string::npos);
  r.hold = false;
  EXPECT_TRUE(running.get().ok());
  EXPECT_TRUE(queued.get().ok());
}

TEST(DynamicBatcher, ExpiredAndCancelledRequestsNeverTakeASlot) {
  Recorder r;
  r.hold = true;
  Batcher b("m", {.max_batch_size = 8, .max_queue_delay = absl::ZeroDuration(), .max_queued_items = 100}, r.Fn());
  auto running = std::async(std::launch::async, [&] { return b.Run({1}, 0, Never(), nullptr, nullptr); });
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  std::atomic<bool> cancel{false};
  auto expiring = std::async(std::launch::async, [&] {
    return b.Run({2}, 0, absl::Now() + absl::Milliseconds(20), nullptr, nullptr);
  });
  auto cancelled = std::async(std::launch::async, [&] {
    return b.Run({3}, 0, Never(), [&] { return cancel.load(); }, nullptr);
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(10));
  cancel = true;
  EXPECT_EQ(expiring.get().status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(cancelled.get().status().code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(b.queued_items(), 0);
  r.hold = false;
  EXPECT_TRUE(running.get().ok());
  b.Shutdown();
  ASSERT_EQ(r.batches.size(), 1u) << "items 2 and 3 must not have run";
}

TEST(DynamicBatcher, ShutdownRunsEverythingQueuedThenRefuses) {
  Recorder r;
  Batcher b("m", {.max_batch_size = 2, .max_queue_delay = absl::Seconds(30), .max_queued_items = 100}, r.Fn());
  auto queued = std::async(std::launch::async, [&] { return b.Run({5}, 0, Never(), nullptr, nullptr); });
  std::this_thread::sleep_for(std::chrono::milliseconds(30));  // waiting out its 30 s delay
  b.Shutdown();
  auto out = queued.get();
  ASSERT_TRUE(out.ok()) << "an accepted item is not lost on shutdown";
  EXPECT_EQ(*out, std::vector<int>{10});
  EXPECT_EQ(b.Run({6}, 0, Never(), nullptr, nullptr).status().code(), absl::StatusCode::kUnavailable);
}

TEST(DynamicBatcher, BatchErrorReachesEveryRequestInIt) {
  Batcher b("m", {.max_batch_size = 4, .max_queue_delay = absl::ZeroDuration(), .max_queued_items = 100},
            [](const std::vector<const int*>&) -> absl::StatusOr<std::vector<int>> {
              return absl::InternalError("device lost");
            });
  auto out = b.Run({1, 2}, 0, Never(), nullptr, nullptr);
  EXPECT_EQ(out.status().code(), absl::StatusCode::kInternal);
}

}  // namespace
}  // namespace elliptical::server
