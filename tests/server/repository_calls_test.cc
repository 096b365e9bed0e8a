// RepositoryCalls (server/core/repository_calls.h), the repository API's verbs every front uses,
// over a real ModelRepository of one fixture classifier in explicit control mode: hostile names
// refused before the repository sees them, changes answered from the change thread, refusals
// while draining and once stopped. The protocols on top are tests/integration/repository_api_test.py's.
#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/core/repository_calls.h"
#include "tests/support/serving_repository.h"
#include "tests/support/temp_dir.h"

namespace elliptical::server {
namespace {

// The outcome of one change, waited for with a deadline.
class Outcome {
 public:
  std::function<void(const absl::Status&)> Callback() {
    return [this](const absl::Status& status) {
      absl::MutexLock lock(&mu_);
      status_ = status;
      done_ = true;
    };
  }
  bool done() {
    absl::MutexLock lock(&mu_);
    return done_;
  }
  absl::Status Wait(absl::Duration timeout = absl::Seconds(120)) {
    absl::MutexLock lock(&mu_);
    if (!mu_.AwaitWithTimeout(absl::Condition(&done_), timeout)) return absl::DeadlineExceededError("no answer");
    return status_;
  }

 private:
  absl::Mutex mu_;
  bool done_ = false;
  absl::Status status_;
};

class RepositoryCallsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(dir_.path().empty());
    root_ = dir_.path() + "/models";
    elliptical::testing::AddModel(root_, "vit", std::string(elliptical::testing::FixturesDir()) + "/models/vit-test",
                                  nlohmann::json::object());
    // Beside the repository: a valid model that "../outside" would reach if a name were a path.
    elliptical::testing::AddModel(dir_.path(), "outside",
                                  std::string(elliptical::testing::FixturesDir()) + "/models/vit-test",
                                  nlohmann::json::object());
    ModelRepository::Options options;
    options.root = root_;
    options.control_mode = ControlMode::kExplicit;
    options.warmup = false;
    auto repository = ModelRepository::Create(options);
    ASSERT_TRUE(repository.ok()) << repository.status();
    repository_ = *std::move(repository);
    repository_->LoadAll();
  }
  void TearDown() override {
    if (repository_) repository_->Shutdown();
  }

  ModelState StateOf(RepositoryCalls& calls, const std::string& name) {
    const std::vector<ModelSnapshot> versions = calls.Versions(name);
    EXPECT_EQ(versions.size(), 1u) << name;
    return versions.empty() ? ModelState::kFailed : versions.front().state;
  }

  elliptical::testing::ScopedTempDir dir_{"repository-calls"};
  std::string root_;
  std::unique_ptr<ModelRepository> repository_;
};

TEST_F(RepositoryCallsTest, HostileNamesAreRefusedAtOnceAndReachNothing) {
  RepositoryCalls calls(repository_.get());
  for (const std::string& name : {std::string("../outside"), std::string(".."), std::string(""),
                                  std::string(300, 'm'), std::string("a/b"), std::string("x\ny")}) {
    for (auto change : {RepositoryCalls::Change::kLoad, RepositoryCalls::Change::kUnload}) {
      Outcome outcome;
      calls.Start(change, name, outcome.Callback());
      ASSERT_TRUE(outcome.done()) << "answered on the caller's thread: " << name.substr(0, 20);
      EXPECT_EQ(outcome.Wait().code(), absl::StatusCode::kInvalidArgument) << name.substr(0, 20);
    }
  }
  const std::vector<ModelSnapshot> index = calls.Index(/*ready_only=*/false);
  ASSERT_EQ(index.size(), 1u);
  EXPECT_EQ(index.front().name, "vit");
  EXPECT_TRUE(calls.Index(/*ready_only=*/true).empty());
}

TEST_F(RepositoryCallsTest, LoadAndUnloadAnswerOnceDone) {
  RepositoryCalls calls(repository_.get());
  EXPECT_EQ(StateOf(calls, "vit"), ModelState::kUnavailable);
  Outcome load;
  calls.Start(RepositoryCalls::Change::kLoad, "vit", load.Callback());
  ASSERT_TRUE(load.Wait().ok()) << load.Wait();
  EXPECT_EQ(StateOf(calls, "vit"), ModelState::kReady);
  EXPECT_EQ(calls.Index(/*ready_only=*/true).size(), 1u);

  Outcome unknown;
  calls.Start(RepositoryCalls::Change::kLoad, "no-such-model", unknown.Callback());
  EXPECT_EQ(unknown.Wait().code(), absl::StatusCode::kNotFound);

  Outcome unload;
  calls.Start(RepositoryCalls::Change::kUnload, "vit", unload.Callback());
  ASSERT_TRUE(unload.Wait().ok()) << unload.Wait();
  EXPECT_FALSE(repository_->ModelReady("vit"));
  EXPECT_TRUE(calls.Index(/*ready_only=*/true).empty());
}

TEST_F(RepositoryCallsTest, RefusedWhileDrainingAndOnceStopped) {
  CallTracker tracker;
  RepositoryCalls calls(repository_.get(), &tracker);
  tracker.BeginDrain();
  Outcome draining;
  calls.Start(RepositoryCalls::Change::kLoad, "vit", draining.Callback());
  ASSERT_TRUE(draining.done());
  EXPECT_EQ(draining.Wait().code(), absl::StatusCode::kUnavailable);

  RepositoryCalls stopped(repository_.get());
  stopped.Stop();
  stopped.Stop();  // idempotent
  Outcome after;
  stopped.Start(RepositoryCalls::Change::kLoad, "vit", after.Callback());
  ASSERT_TRUE(after.done());
  EXPECT_EQ(after.Wait().code(), absl::StatusCode::kUnavailable);
  EXPECT_FALSE(repository_->ModelReady("vit"));
}

}  // namespace
}  // namespace elliptical::server
