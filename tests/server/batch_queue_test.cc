// The batching policy alone, at times the test chooses: no threads, no clock, no sleeps.
#include <gtest/gtest.h>

#include "server/batching/batch_queue.h"

namespace elliptical::server {
namespace {

using Queue = BatchQueue<int, int>;
using Task = Queue::Task;

const absl::Time t0 = absl::UnixEpoch() + absl::Hours(1);

struct Outcome {
  bool called = false;
  absl::StatusOr<std::vector<int>> result = absl::UnknownError("not called");
  BatchTiming timing;
};

Task MakeTask(std::vector<int> items, Outcome* out, uint64_t key = 0,
              Priority priority = Priority::kNormal, absl::Time deadline = absl::InfiniteFuture()) {
  Task t;
  t.items = std::move(items);
  t.key = key;
  t.priority = priority;
  t.deadline = deadline;
  t.on_done = [out](absl::StatusOr<std::vector<int>> r, const BatchTiming& timing) {
    EXPECT_FALSE(out->called) << "a task's callback runs once";
    out->called = true;
    out->result = std::move(r);
    out->timing = timing;
  };
  return t;
}

std::vector<int> Values(const Queue::Batch& b) {
  std::vector<int> v;
  for (const int* i : b.items()) v.push_back(*i);
  return v;
}

// Runs `b` as doubling and delivers what finished.
void RunBatch(Queue& q, const Queue::Batch& b, absl::Duration compute = absl::Milliseconds(1)) {
  std::vector<int> out;
  for (int v : Values(b)) out.push_back(2 * v);
  std::vector<Queue::Completion> done;
  q.Complete(b, out, compute, 0, &done);
  for (auto& c : done) c.Deliver();
}

std::optional<Queue::Batch> Take(Queue& q, absl::Time now, absl::Time* wake = nullptr) {
  absl::Time w;
  std::vector<Queue::Completion> done;
  auto b = q.Take(now, false, &w, &done);
  for (auto& c : done) c.Deliver();
  if (wake) *wake = w;
  return b;
}

BatchingOptions Options(int max_batch, absl::Duration delay = absl::ZeroDuration(), int max_queued = 100) {
  BatchingOptions o;
  o.max_batch_size = max_batch;
  o.max_queue_delay = delay;
  o.max_queued_items = max_queued;
  return o;
}

TEST(BatchQueue, AnIdleInstanceTakesWhatIsQueuedAtOnceByDefault) {
  Queue q("m", Options(8));
  Outcome a;
  ASSERT_TRUE(q.Add(MakeTask({1}, &a), t0).ok());
  auto b = Take(q, t0);  // same instant: no waiting for a fuller batch
  ASSERT_TRUE(b);
  EXPECT_EQ(Values(*b), std::vector<int>{1});
  RunBatch(q, *b);
  ASSERT_TRUE(a.called && a.result.ok());
  EXPECT_EQ(*a.result, std::vector<int>{2});
  EXPECT_EQ(a.timing.queue, absl::ZeroDuration());
}

TEST(BatchQueue, WithAQueueDelayAPartialBatchWaitsUntilTheHeadHasWaitedIt) {
  Queue q("m", Options(4, absl::Milliseconds(10)));
  Outcome a, b;
  ASSERT_TRUE(q.Add(MakeTask({1}, &a), t0).ok());
  absl::Time wake;
  EXPECT_FALSE(Take(q, t0 + absl::Milliseconds(3), &wake));
  EXPECT_EQ(wake, t0 + absl::Milliseconds(10));
  ASSERT_TRUE(q.Add(MakeTask({2}, &b), t0 + absl::Milliseconds(5)).ok());
  EXPECT_FALSE(Take(q, t0 + absl::Milliseconds(9)));
  auto batch = Take(q, t0 + absl::Milliseconds(10));
  ASSERT_TRUE(batch);
  EXPECT_EQ(Values(*batch), (std::vector<int>{1, 2}));
  EXPECT_EQ(batch->slots[0].request->task.items.size(), 1u);
}

TEST(BatchQueue, AFullBatchRunsWithoutWaitingForTheDelay) {
  Queue q("m", Options(3, absl::Seconds(5)));
  Outcome o[3];
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(q.Add(MakeTask({i}, &o[i]), t0).ok());
  auto b = Take(q, t0);
  ASSERT_TRUE(b);
  EXPECT_EQ(Values(*b), (std::vector<int>{0, 1, 2}));
}

TEST(BatchQueue, ALargeTaskSpansBatchesAndItsResultsStayInOrder) {
  Queue q("m", Options(3));
  Outcome a;
  ASSERT_TRUE(q.Add(MakeTask({1, 2, 3, 4, 5}, &a), t0).ok());
  auto first = Take(q, t0);
  auto second = Take(q, t0);  // a second instance
  ASSERT_TRUE(first && second);
  EXPECT_EQ(Values(*first), (std::vector<int>{1, 2, 3}));
  EXPECT_EQ(Values(*second), (std::vector<int>{4, 5}));
  RunBatch(q, *second);  // completes out of order
  EXPECT_FALSE(a.called);
  RunBatch(q, *first);
  ASSERT_TRUE(a.called && a.result.ok());
  EXPECT_EQ(*a.result, (std::vector<int>{2, 4, 6, 8, 10}));
  EXPECT_EQ(a.timing.batch_size, 3);
}

TEST(BatchQueue, DifferentKeysNeverShareABatchAndTheOldestKeyGoesFirst) {
  Queue q("m", Options(8));
  Outcome o[4];
  ASSERT_TRUE(q.Add(MakeTask({10}, &o[0], /*key=*/7), t0).ok());
  ASSERT_TRUE(q.Add(MakeTask({20}, &o[1], /*key=*/9), t0).ok());
  ASSERT_TRUE(q.Add(MakeTask({11}, &o[2], /*key=*/7), t0).ok());
  ASSERT_TRUE(q.Add(MakeTask({21}, &o[3], /*key=*/9), t0).ok());
  auto first = Take(q, t0);
  auto second = Take(q, t0);
  ASSERT_TRUE(first && second);
  EXPECT_EQ(Values(*first), (std::vector<int>{10, 11}));
  EXPECT_EQ(Values(*second), (std::vector<int>{20, 21}));
}

TEST(BatchQueue, HigherPriorityIsServedFirstAndLowerWaitsAtMostTheBound) {
  BatchingOptions options = Options(1);
  options.max_priority_wait = absl::Milliseconds(100);
  Queue q("m", options);
  Outcome low, normal, high, later_high;
  ASSERT_TRUE(q.Add(MakeTask({1}, &low, 0, Priority::kLow), t0).ok());
  ASSERT_TRUE(q.Add(MakeTask({2}, &normal, 0, Priority::kNormal), t0).ok());
  ASSERT_TRUE(q.Add(MakeTask({3}, &high, 0, Priority::kHigh), t0).ok());
  auto b = Take(q, t0);
  ASSERT_TRUE(b);
  EXPECT_EQ(Values(*b), std::vector<int>{3});
  b = Take(q, t0);
  ASSERT_TRUE(b);
  EXPECT_EQ(Values(*b), std::vector<int>{2});
  // A stream of high-priority work cannot hold the low task back past the bound.
  ASSERT_TRUE(q.Add(MakeTask({4}, &later_high, 0, Priority::kHigh), t0 + absl::Milliseconds(99)).ok());
  b = Take(q, t0 + absl::Milliseconds(99));
  ASSERT_TRUE(b);
  EXPECT_EQ(Values(*b), std::vector<int>{4}) << "before the bound, priority decides";
  Outcome another_high;
  ASSERT_TRUE(q.Add(MakeTask({5}, &another_high, 0, Priority::kHigh), t0 + absl::Milliseconds(100)).ok());
  b = Take(q, t0 + absl::Milliseconds(100));
  ASSERT_TRUE(b);
  EXPECT_EQ(Values(*b), std::vector<int>{1}) << "at the bound, the low task counts as high and is older";
}

TEST(BatchQueue, AFullQueueRefusesWithResourceExhaustedAndKeepsWhatItAccepted) {
  Queue q("m", Options(1, absl::ZeroDuration(), /*max_queued=*/2));
  Outcome a, b, c, big;
  ASSERT_TRUE(q.Add(MakeTask({1}, &a), t0).ok());
  ASSERT_TRUE(q.Add(MakeTask({2}, &b), t0).ok());
  auto refused = q.Add(MakeTask({3}, &c), t0);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(refused.status().message().find("2 of 2 items"), std::string::npos) << refused.status();
  EXPECT_EQ(q.Add(MakeTask({1, 2, 3}, &big), t0).status().code(), absl::StatusCode::kInvalidArgument)
      << "a task larger than the whole queue can never run";
  EXPECT_FALSE(c.called) << "a refused task is not taken: its callback never runs";
  EXPECT_EQ(q.queued_items(), 2);
}

TEST(BatchQueue, ExpiredTasksNeverTakeASlot) {
  Queue q("m", Options(8));
  Outcome expired, alive;
  ASSERT_TRUE(q.Add(MakeTask({1}, &expired, 0, Priority::kNormal, t0 + absl::Milliseconds(5)), t0).ok());
  ASSERT_TRUE(q.Add(MakeTask({2}, &alive), t0).ok());
  auto b = Take(q, t0 + absl::Milliseconds(5));
  ASSERT_TRUE(b);
  EXPECT_EQ(Values(*b), std::vector<int>{2});
  ASSERT_TRUE(expired.called);
  EXPECT_EQ(expired.result.status().code(), absl::StatusCode::kDeadlineExceeded);
}

TEST(BatchQueue, CancelFinishesAQueuedTaskAtOnceAndARunningOneWhenItsBatchEnds) {
  Queue q("m", Options(2));
  Outcome queued, running;
  ASSERT_TRUE(q.Add(MakeTask({1, 2, 3}, &running), t0).ok());
  auto b = Take(q, t0);  // takes items 1, 2; item 3 still queued
  ASSERT_TRUE(b);
  auto id = q.Add(MakeTask({4}, &queued), t0);
  ASSERT_TRUE(id.ok());
  auto done = q.Cancel(*id, absl::CancelledError("gone"));
  ASSERT_TRUE(done);
  done->Deliver();
  EXPECT_EQ(queued.result.status().code(), absl::StatusCode::kCancelled);

  EXPECT_FALSE(q.Cancel(1, absl::CancelledError("gone"))) << "its batch is running";
  EXPECT_EQ(q.queued_items(), 0) << "its waiting item was dropped";
  EXPECT_FALSE(running.called);
  RunBatch(q, *b);
  ASSERT_TRUE(running.called);
  EXPECT_EQ(running.result.status().code(), absl::StatusCode::kCancelled);
  EXPECT_TRUE(q.empty());
}

TEST(BatchQueue, AFailedBatchFailsItsTasksAndDropsTheirRest) {
  Queue q("m", Options(2));
  Outcome a, b;
  ASSERT_TRUE(q.Add(MakeTask({1, 2, 3}, &a), t0).ok());
  ASSERT_TRUE(q.Add(MakeTask({9}, &b), t0).ok());
  auto batch = Take(q, t0);
  ASSERT_TRUE(batch);
  std::vector<Queue::Completion> done;
  q.Complete(*batch, absl::InternalError("device lost"), absl::Milliseconds(1), 0, &done);
  for (auto& c : done) c.Deliver();
  ASSERT_TRUE(a.called);
  EXPECT_EQ(a.result.status().code(), absl::StatusCode::kInternal);
  EXPECT_FALSE(b.called);
  auto next = Take(q, t0);
  ASSERT_TRUE(next);
  EXPECT_EQ(Values(*next), std::vector<int>{9}) << "the failed task's third item never runs";
}

TEST(BatchQueue, ARunningBatchIsAbandonedOnlyWhenNoTaskInItStillWantsItsResults) {
  Queue q("m", Options(4));
  Outcome cancelled, expiring;
  auto first = q.Add(MakeTask({1}, &cancelled), t0);
  ASSERT_TRUE(first.ok());
  ASSERT_TRUE(q.Add(MakeTask({2}, &expiring, 0, Priority::kNormal, t0 + absl::Seconds(1)), t0).ok());
  auto b = Take(q, t0);
  ASSERT_TRUE(b);
  ASSERT_EQ(Values(*b), (std::vector<int>{1, 2}));
  EXPECT_FALSE(q.Abandoned(*b, t0));

  EXPECT_FALSE(q.Cancel(*first, absl::CancelledError("gone"))) << "it is running: answered when its batch ends";
  EXPECT_FALSE(q.Abandoned(*b, t0)) << "the second task still waits";
  EXPECT_TRUE(q.Abandoned(*b, t0 + absl::Seconds(1))) << "once its deadline passes, nobody waits";

  // The batch function stopped: the expired task says so, the cancelled one keeps its reason.
  const absl::Time now = t0 + absl::Seconds(1);
  q.MarkExpired(*b, now);
  std::vector<Queue::Completion> done;
  q.Complete(*b, absl::CancelledError("stopped"), absl::Milliseconds(1), 0, &done);
  for (auto& c : done) c.Deliver();
  ASSERT_TRUE(cancelled.called && expiring.called);
  EXPECT_EQ(cancelled.result.status().message(), "gone");
  EXPECT_EQ(expiring.result.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_TRUE(q.empty());
}

}  // namespace
}  // namespace elliptical::server
