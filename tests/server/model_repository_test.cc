// The model repository's lifecycle on the fixture models, in process: versions and their
// policy, explicit and poll control, reloads that leave a leased version serving until it is
// released, failed reloads, the memory budget, readiness.
#include "server/repository/model_repository.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <atomic>
#include <future>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "absl/synchronization/mutex.h"
#include "server/serving/vision_servable.h"
#include "tests/support/fixtures.h"
#include "tests/support/serving_repository.h"
#include "tests/support/temp_dir.h"

namespace elliptical::server {
namespace {

namespace fs = std::filesystem;
using elliptical::testing::AddModel;

fs::path Vit() { return fs::path(elliptical::testing::FixturesDir()) / "models" / "vit-test"; }

class RepositoryTest : public ::testing::Test {
 protected:
  void SetUp() override { root_ = fs::path(dir_.path()); }
  void TearDown() override { repo_.reset(); }

  // A classifier with small batches, so warm-up stays short.
  void AddVit(const fs::path& dir, int max_batch_size = 2) {
    AddModel(dir.parent_path(), dir.filename().string(), Vit(),
             {{"batching", {{"max_batch_size", max_batch_size}}}, {"instances", {{"count", 1}}}});
  }

  static ModelRepository::Options Explicit(std::vector<std::string> startup_models) {
    ModelRepository::Options o;
    o.control_mode = ControlMode::kExplicit;
    o.startup_models = std::move(startup_models);
    return o;
  }

  ModelRepository& Start(ModelRepository::Options options = {}) {
    options.root = root_.string();
    options.on_change = [this] {
      absl::MutexLock lock(&mu_);
      ++changes_;
    };
    auto repo = ModelRepository::Create(options);
    EXPECT_TRUE(repo.ok()) << repo.status();
    repo_ = *std::move(repo);
    repo_->LoadAll();
    return *repo_;
  }

  // Waits (on the repository's change notifications, up to 30 s) until `done` holds.
  bool WaitFor(const std::function<bool()>& done) {
    const absl::Time deadline = absl::Now() + absl::Seconds(30);
    absl::MutexLock lock(&mu_);
    while (!done()) {
      const int seen = changes_;
      auto changed = [this, seen]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return changes_ != seen; };
      if (!mu_.AwaitWithDeadline(absl::Condition(&changed), deadline)) return done();
    }
    return true;
  }

  ModelState StateOf(const std::string& name, int64_t version) {
    for (const ModelSnapshot& s : repo_->Index()) {
      if (s.name == name && s.version == version) return s.state;
    }
    return ModelState::kLoading;
  }

  elliptical::testing::ScopedTempDir dir_{"repository-test"};
  fs::path root_;
  std::unique_ptr<ModelRepository> repo_;
  absl::Mutex mu_;
  int changes_ ABSL_GUARDED_BY(mu_) = 0;
};

// Classifies one synthetic image through `servable` and returns the status of the result.
absl::Status ClassifyOnce(ClassifierServable& servable) {
  model::RgbImage image;
  image.width = image.height = 32;
  image.pixels.assign(32 * 32 * 3, 128);
  std::promise<absl::Status> done;
  auto pending = servable.Submit({image}, false, CallOptions{},
                                 [&done](absl::StatusOr<std::vector<model::Classification>> r, const ServeTiming&) {
                                   done.set_value(r.status());
                                 });
  if (!pending.ok()) return pending.status();
  return done.get_future().get();
}

TEST_F(RepositoryTest, AFlatDirectoryIsVersionOneAndWarmsUpBeforeReady) {
  AddVit(root_ / "vit");
  ModelRepository& repo = Start();
  auto s = repo.Describe("vit");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->state, ModelState::kReady);
  EXPECT_EQ(s->version, 1);
  EXPECT_EQ(s->ready_versions, std::vector<int64_t>{1});
  // One instance, batch-size buckets 1 and 2.
  EXPECT_EQ(s->report.warmup_runs, 2);
  EXPECT_GT(s->report.memory_bytes, 0);
  EXPECT_TRUE(repo.ServerReady());
  EXPECT_EQ(repo.Describe("vit", "2").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(repo.Describe("vit", "x1").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(RepositoryTest, WarmupOffRunsNothing) {
  AddVit(root_ / "vit");
  ModelRepository::Options o;
  o.warmup = false;
  ModelRepository& repo = Start(o);
  EXPECT_EQ(repo.Describe("vit")->report.warmup_runs, 0);
}

TEST_F(RepositoryTest, TheVersionPolicyChoosesWhatServesAndRequestsMayNameOne) {
  for (int v : {1, 2, 3}) AddVit(root_ / "vit" / std::to_string(v));
  std::ofstream(root_ / "vit" / "config.json") << R"({"version_policy": {"latest": {"num_versions": 2}}})";
  ModelRepository& repo = Start();
  EXPECT_EQ(repo.Describe("vit")->ready_versions, (std::vector<int64_t>{3, 2}));
  EXPECT_EQ(StateOf("vit", 1), ModelState::kUnavailable);
  int64_t served = 0;
  ASSERT_TRUE(repo.Get<ClassifierServable>("vit", "", &served).ok());
  EXPECT_EQ(served, 3);  // the newest ready one
  ASSERT_TRUE(repo.Get<ClassifierServable>("vit", "2", &served).ok());
  EXPECT_EQ(served, 2);
  auto one = repo.Get<ClassifierServable>("vit", "1");
  EXPECT_EQ(one.status().code(), absl::StatusCode::kNotFound) << one.status();
  EXPECT_NE(one.status().message().find("ready versions: [3, 2]"), std::string::npos) << one.status();
}

TEST_F(RepositoryTest, ABadVersionPolicyFailsTheModelNamingTheFile) {
  AddVit(root_ / "vit" / "1");
  std::ofstream(root_ / "vit" / "config.json") << R"({"version_policy": {"newest": {}}})";
  ModelRepository& repo = Start();
  auto s = repo.Describe("vit");
  EXPECT_EQ(s->state, ModelState::kFailed);
  EXPECT_NE(s->reason.find("vit/config.json"), std::string::npos) << s->reason;
  EXPECT_FALSE(repo.ServerReady());  // no model is ready: health must not say SERVING
}

TEST_F(RepositoryTest, ExplicitModeLoadsWhatItIsToldAndUnloads) {
  AddVit(root_ / "a");
  AddVit(root_ / "b");
  ModelRepository& repo = Start(Explicit({"a"}));
  EXPECT_EQ(repo.Describe("b")->state, ModelState::kUnavailable);
  EXPECT_EQ(repo.Get<ClassifierServable>("b").status().code(), absl::StatusCode::kUnavailable);
  ASSERT_TRUE(repo.LoadModel("b").ok());
  EXPECT_TRUE(repo.Get<ClassifierServable>("b").ok());

  ASSERT_TRUE(repo.UnloadModel("a").ok());
  auto a = repo.Get<ClassifierServable>("a");
  EXPECT_EQ(a.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(a.status().message().find("unloaded"), std::string::npos) << a.status();
  EXPECT_TRUE(WaitFor([&] { return StateOf("a", 1) == ModelState::kUnavailable; }));

  EXPECT_EQ(repo.LoadModel("missing").code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(repo.LoadModel("../a").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(repo.LoadModel("").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(repo.LoadModel(std::string(300, 'x')).code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(RepositoryTest, TheOtherModesRefuseTheRepositoryApiNamingTheFlag) {
  AddVit(root_ / "a");
  ModelRepository& repo = Start();
  absl::Status s = repo.LoadModel("a");
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(s.message().find("--model_control_mode"), std::string::npos) << s;
  EXPECT_EQ(repo.UnloadModel("a").code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(repo.Get<ClassifierServable>("a").ok());
}

TEST_F(RepositoryTest, AReloadServesNewRequestsWhileALeasedCopyFinishesItsOwn) {
  AddVit(root_ / "a");
  ModelRepository& repo = Start(Explicit({"*"}));
  auto before = repo.Get<ClassifierServable>("a");
  ASSERT_TRUE(before.ok());
  ASSERT_TRUE(repo.LoadModel("a").ok());
  auto after = repo.Get<ClassifierServable>("a");
  ASSERT_TRUE(after.ok());
  EXPECT_NE(before->get(), after->get());
  // The old copy was not shut down under its holder: it still computes.
  EXPECT_TRUE(ClassifyOnce(**before).ok());
  EXPECT_TRUE(ClassifyOnce(**after).ok());
  const int64_t both = repo.Describe("a")->report.memory_bytes;
  before->reset();  // the last lease on the old copy: it drains and is freed
  EXPECT_EQ(repo.Describe("a")->state, ModelState::kReady);
  EXPECT_GT(both, 0);
}

TEST_F(RepositoryTest, AFailedReloadKeepsThePreviousLoadServing) {
  AddVit(root_ / "a");
  ModelRepository& repo = Start(Explicit({"a"}));
  auto before = repo.Get<ClassifierServable>("a");
  ASSERT_TRUE(before.ok());
  std::ofstream(root_ / "a" / "config.json") << R"({"family": "image_classifier", "no_such_key": 1})";
  absl::Status s = repo.LoadModel("a");
  EXPECT_FALSE(s.ok());
  auto now = repo.Get<ClassifierServable>("a");
  ASSERT_TRUE(now.ok()) << now.status();
  EXPECT_EQ(now->get(), before->get());
  auto d = repo.Describe("a");
  EXPECT_EQ(d->state, ModelState::kReady);
  EXPECT_NE(d->reason.find("reload failed"), std::string::npos) << d->reason;
  EXPECT_NE(d->reason.find("no_such_key"), std::string::npos) << d->reason;
}

TEST_F(RepositoryTest, TheMemoryBudgetRefusesASecondCopyAndTheFirstServes) {
  AddVit(root_ / "a");
  int64_t files = 0;
  for (const auto& f : fs::recursive_directory_iterator(root_ / "a")) {
    if (f.is_regular_file()) files += static_cast<int64_t>(f.file_size());
  }
  ModelRepository::Options o = Explicit({"a"});
  o.memory_budget_bytes = files + files / 2;  // one copy fits, two do not
  ModelRepository& repo = Start(o);
  ASSERT_EQ(repo.Describe("a")->state, ModelState::kReady);
  absl::Status s = repo.LoadModel("a");
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
  EXPECT_NE(s.message().find("--model_memory_budget_mb"), std::string::npos) << s;
  EXPECT_TRUE(repo.Get<ClassifierServable>("a").ok());
  // Once unloaded and drained, its bytes leave the budget and it loads again.
  ASSERT_TRUE(repo.UnloadModel("a").ok());
  EXPECT_TRUE(WaitFor([&] { return StateOf("a", 1) == ModelState::kUnavailable; }));
  EXPECT_TRUE(repo.LoadModel("a").ok());
}

TEST_F(RepositoryTest, PollingLoadsANewVersionRetiresTheOldAndDropsARemovedModel) {
  AddVit(root_ / "vit" / "1");
  AddVit(root_ / "other");
  ModelRepository::Options o;
  o.control_mode = ControlMode::kPoll;
  o.poll_interval = absl::Hours(1);  // the test polls itself
  ModelRepository& repo = Start(o);
  ASSERT_EQ(repo.Describe("vit")->ready_versions, std::vector<int64_t>{1});
  AddVit(root_ / "vit" / "2");
  // Through the switch, a request always finds a version: the new one is ready before the
  // old one stops taking requests.
  std::atomic<bool> stop{false};
  std::atomic<int> misses{0}, calls{0};
  std::thread caller([&] {
    while (!stop.load()) {
      if (!repo.Get<ClassifierServable>("vit").ok()) ++misses;
      ++calls;
    }
  });
  repo.Poll();
  stop.store(true);
  caller.join();
  EXPECT_EQ(misses.load(), 0) << "of " << calls.load();
  EXPECT_EQ(repo.Describe("vit")->ready_versions, std::vector<int64_t>{2});
  EXPECT_TRUE(WaitFor([&] { return StateOf("vit", 1) == ModelState::kUnavailable; }));
  // An unchanged version is not reloaded.
  auto two = repo.Get<ClassifierServable>("vit");
  repo.Poll();
  EXPECT_EQ(repo.Get<ClassifierServable>("vit")->get(), two->get());
  // A removed directory unloads its model.
  // (nftw: libtorch.so's own std::filesystem::remove_all binds first in this binary.)
  nftw((root_ / "other").c_str(), [](const char* p, const struct stat*, int, struct FTW*) { return remove(p); }, 16,
       FTW_DEPTH | FTW_PHYS);
  repo.Poll();
  EXPECT_FALSE(repo.Contains("other"));
  EXPECT_EQ(repo.Get<ClassifierServable>("other").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(RepositoryTest, ANewVersionThatFailsLeavesThePreviousServingAndIsNotRetriedUnchanged) {
  AddVit(root_ / "vit" / "1");
  auto metrics = ServerMetrics::Unexposed("test");
  ModelRepository::Options o;
  o.control_mode = ControlMode::kPoll;
  o.poll_interval = absl::Hours(1);
  o.metrics = metrics.get();
  ModelRepository& repo = Start(o);
  fs::create_directories(root_ / "vit" / "2");
  std::ofstream(root_ / "vit" / "2" / "config.json") << R"({"family": "image_classifier", "no_such_key": 1})";
  repo.Poll();
  EXPECT_EQ(StateOf("vit", 2), ModelState::kFailed);
  int64_t served = 0;
  ASSERT_TRUE(repo.Get<ClassifierServable>("vit", "", &served).ok());
  EXPECT_EQ(served, 1);
  const std::string failed =
      R"(elliptical_model_lifecycle_total{action="load",model="vit",outcome="failed",version="2"} 1)";
  EXPECT_NE(metrics->Exposition().find(failed), std::string::npos) << metrics->Exposition();
  repo.Poll();  // nothing changed: version 2 is not tried again
  repo.Poll();
  EXPECT_NE(metrics->Exposition().find(failed), std::string::npos) << "an unchanged failed version was tried again";
}

TEST_F(RepositoryTest, StrictReadinessWantsEveryModel) {
  AddVit(root_ / "good");
  fs::create_directories(root_ / "bad");
  std::ofstream(root_ / "bad" / "config.json") << R"({"family": "image_classifier", "weights": "missing.safetensors"})";
  {
    ModelRepository& repo = Start();
    EXPECT_TRUE(repo.ServerReady());
    EXPECT_TRUE(repo.ModelReady("good"));
    EXPECT_FALSE(repo.ModelReady("bad"));
  }
  repo_.reset();
  ModelRepository::Options o;
  o.strict_readiness = true;
  ModelRepository& strict = Start(o);
  EXPECT_FALSE(strict.ServerReady());
}

TEST_F(RepositoryTest, AnUnloadedVersionIsUnloadingUntilItsLastLeaseGoes) {
  AddVit(root_ / "a");
  ModelRepository& repo = Start(Explicit({"a"}));
  auto lease = repo.Get<ClassifierServable>("a");
  ASSERT_TRUE(lease.ok());
  ASSERT_TRUE(repo.UnloadModel("a").ok());
  EXPECT_EQ(StateOf("a", 1), ModelState::kUnloading);
  EXPECT_TRUE(ClassifyOnce(**lease).ok());  // accepted work still runs
  lease->reset();
  EXPECT_TRUE(WaitFor([&] { return StateOf("a", 1) == ModelState::kUnavailable; }));
}

TEST(ModelVersions, NamesThatLeaveTheRepositoryAreRefused) {
  for (const char* bad : {"", ".", "..", "a/b", "../x", "a\\b", "a\nb"}) {
    EXPECT_EQ(CheckModelName(bad).code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_TRUE(CheckModelName("deit-small_v2.1").ok());
  EXPECT_EQ(ParseVersion("m", "").value(), 0);
  EXPECT_EQ(ParseVersion("m", "12").value(), 12);
  for (const char* bad : {"0", "-1", "1.5", " 1", "99999999999999999999"}) {
    EXPECT_EQ(ParseVersion("m", bad).status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
}

}  // namespace
}  // namespace elliptical::server
