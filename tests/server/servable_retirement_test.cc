// ServableRetirement: a leased servable is shut down and freed once, after its last lease is
// released, on the retirement thread (or a thread of its own after Stop), never on the thread
// that released it. Runs in the TSan build too (tests/sanitizers).
#include "server/repository/servable_retirement.h"

#include <atomic>
#include <future>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace elliptical::server {
namespace {

class FakeServable final : public Servable {
 public:
  explicit FakeServable(std::atomic<int>* shutdowns, std::atomic<int>* destroyed)
      : shutdowns_(shutdowns), destroyed_(destroyed) {}
  ~FakeServable() override { destroyed_->fetch_add(1); }
  const model::ModelDescription& description() const override { return description_; }
  ServableLoad load() const override { return {}; }
  void Shutdown() override {
    shutdowns_->fetch_add(1);
  }

 private:
  model::ModelDescription description_;
  std::atomic<int>* shutdowns_;
  std::atomic<int>* destroyed_;
};

TEST(ServableRetirement, TheLastLeaseShutsDownAndFreesOnceOnTheRetirementThread) {
  auto retirement = ServableRetirement::Start();
  std::atomic<int> shutdowns{0}, destroyed{0};
  auto servable = std::make_shared<FakeServable>(&shutdowns, &destroyed);
  std::promise<std::thread::id> drained;
  std::shared_ptr<Servable> lease =
      retirement->Lease(servable, [&] { drained.set_value(std::this_thread::get_id()); });
  servable.reset();
  std::shared_ptr<Servable> copy = lease;
  lease.reset();
  EXPECT_EQ(shutdowns.load(), 0);  // a copy still holds it
  std::thread releaser([&] { copy.reset(); });
  const std::thread::id releaser_id = releaser.get_id();
  releaser.join();
  const std::thread::id drained_on = drained.get_future().get();
  EXPECT_EQ(shutdowns.load(), 1);
  EXPECT_EQ(destroyed.load(), 1);
  EXPECT_NE(drained_on, releaser_id);
  retirement->Stop();
}

TEST(ServableRetirement, LeasesCopiedAndReleasedOnManyThreadsRetireOnce) {
  auto retirement = ServableRetirement::Start();
  std::atomic<int> shutdowns{0}, destroyed{0}, drained{0};
  std::promise<void> done;
  std::shared_ptr<Servable> lease = retirement->Lease(std::make_shared<FakeServable>(&shutdowns, &destroyed), [&] {
    drained.fetch_add(1);
    done.set_value();
  });
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([copy = lease]() mutable {
      for (int i = 0; i < 1000; ++i) {
        std::shared_ptr<Servable> again = copy;
        again.reset();
      }
      copy.reset();
    });
  }
  lease.reset();
  for (auto& t : threads) t.join();
  done.get_future().wait();
  EXPECT_EQ(shutdowns.load(), 1);
  EXPECT_EQ(destroyed.load(), 1);
  EXPECT_EQ(drained.load(), 1);
  retirement->Stop();
}

TEST(ServableRetirement, ALeaseReleasedAfterStopStillShutsItsServableDown) {
  auto retirement = ServableRetirement::Start();
  std::atomic<int> shutdowns{0}, destroyed{0};
  std::promise<void> done;
  std::shared_ptr<Servable> lease =
      retirement->Lease(std::make_shared<FakeServable>(&shutdowns, &destroyed), [&] { done.set_value(); });
  retirement->Stop();
  retirement.reset();  // the process is exiting, a call still holds the lease
  lease.reset();
  done.get_future().wait();
  EXPECT_EQ(shutdowns.load(), 1);
  EXPECT_EQ(destroyed.load(), 1);
}

}  // namespace
}  // namespace elliptical::server
