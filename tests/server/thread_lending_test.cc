// ThreadLending: a lone batch borrows every instance's threads only once the model has run one
// batch at a time for the quiet period; any overlap or queued work keeps each batch to its share.
#include "server/serving/thread_lending.h"

#include <gtest/gtest.h>

namespace elliptical::server {
namespace {

const absl::Time kStart = absl::FromUnixSeconds(1000);

TEST(ThreadLending, ALoneBatchOnAQuietModelTakesEveryThread) {
  ThreadLending lending(1, 2, absl::Milliseconds(250));
  EXPECT_EQ(lending.ThreadsFor(1, 0, kStart), 2);
}

TEST(ThreadLending, OverlapOrQueuedWorkKeepsEachBatchToItsShare) {
  ThreadLending lending(1, 2, absl::Milliseconds(250));
  EXPECT_EQ(lending.ThreadsFor(2, 0, kStart), 1);
  EXPECT_EQ(lending.ThreadsFor(1, 3, kStart), 1);
}

TEST(ThreadLending, LendingResumesOnlyAfterTheQuietPeriod) {
  ThreadLending lending(2, 8, absl::Milliseconds(250));
  EXPECT_EQ(lending.ThreadsFor(2, 0, kStart), 2);  // contended
  EXPECT_EQ(lending.ThreadsFor(1, 0, kStart + absl::Milliseconds(100)), 2);
  EXPECT_EQ(lending.ThreadsFor(1, 0, kStart + absl::Milliseconds(249)), 2);
  EXPECT_EQ(lending.ThreadsFor(1, 0, kStart + absl::Milliseconds(250)), 8);
  EXPECT_EQ(lending.ThreadsFor(1, 1, kStart + absl::Milliseconds(300)), 2);  // contended again
  EXPECT_EQ(lending.ThreadsFor(1, 0, kStart + absl::Milliseconds(400)), 2);
}

}  // namespace
}  // namespace elliptical::server
