// The load generator against the real server: its request counts agree with the server's own
// counter, and its latency percentiles see a delay the server is known to add.
#include <filesystem>
#include <regex>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/support/fixtures.h"
#include "tests/support/process.h"
#include "tests/support/serving_repository.h"

namespace elliptical {
namespace {

namespace fs = std::filesystem;
using testing::CommandResult;
using testing::RunCommand;
using testing::ServerProcess;

std::string LoadgenBinary() { return testing::BuildDir() + "/client/elliptical-loadgen"; }

class LoadgenTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    repo_ = new std::string(testing::MakeServingRepository("loadgen"));
    server_ = new ServerProcess(testing::ServerBinary(),
                                {"--model_repository=" + *repo_, "--compute_threads=1"});
  }
  static void TearDownTestSuite() {
    delete server_;
    fs::remove_all(*repo_);
    delete repo_;
  }
  void SetUp() override { ASSERT_TRUE(server_->ok()) << server_->log(); }

  // Runs the load generator; returns its one report.
  static nlohmann::json Load(std::vector<std::string> flags) {
    const std::string out = testing::BuildDir() + "/loadgen_" + std::to_string(getpid()) + ".json";
    std::vector<std::string> argv = {LoadgenBinary(), "--server=" + server_->address(), "--out=" + out,
                                     "--progress=false", "--warmup_s=0"};
    argv.insert(argv.end(), flags.begin(), flags.end());
    CommandResult r = RunCommand(argv, 120);
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    nlohmann::json reports = nlohmann::json::parse(testing::ReadFileBytes(out), nullptr, false);
    fs::remove(out);
    if (!reports.is_array() || reports.empty()) return nlohmann::json::object();
    return reports[0];
  }

  // The server's own count of OK calls of `rpc` on `model`, from its /metrics.
  static int64_t ServerCount(const std::string& model, const std::string& rpc) {
    CommandResult r = RunCommand({"/bin/bash", "-c", "curl -sf http://127.0.0.1:" +
                                                         std::to_string(server_->metrics_port()) + "/metrics"});
    const std::regex line("elliptical_requests_total\\{code=\"OK\",model=\"" + model + "\",protocol=\"elliptical\",rpc=\"" + rpc +
                          "\"\\} ([0-9.e+]+)");
    std::smatch m;
    return std::regex_search(r.out, m, line) ? static_cast<int64_t>(std::stod(m[1])) : -1;
  }

  static std::string Image() { return testing::FixturesDir() + "/images/pattern_0.png"; }
  static std::string* repo_;
  static ServerProcess* server_;
};
std::string* LoadgenTest::repo_ = nullptr;
ServerProcess* LoadgenTest::server_ = nullptr;

TEST_F(LoadgenTest, LatencyPercentilesSeeAKnownDelay) {
  nlohmann::json r = Load({"--rpc=classify", "--model=vit-delay", "--image=" + Image(),
                           "--mode=closed", "--concurrency=1", "--requests=12"});
  ASSERT_TRUE(r.contains("latency_ms")) << r.dump();
  EXPECT_GE(r["ok"].get<int64_t>(), 12);
  // Each request waits out the 100 ms queue delay, plus a forward of a tiny model.
  EXPECT_GE(r["latency_ms"]["p50"].get<double>(), 99.0);
  EXPECT_LT(r["latency_ms"]["p50"].get<double>(), 180.0);
  EXPECT_LT(r["latency_ms"]["p99"].get<double>(), 400.0);
  EXPECT_LE(r["latency_ms"]["p50"].get<double>(), r["latency_ms"]["p90"].get<double>());
  EXPECT_LE(r["latency_ms"]["p99"].get<double>(), r["latency_ms"]["max"].get<double>());
  EXPECT_EQ(ServerCount("vit-delay", "Classify"), r["ok"].get<int64_t>());
}

TEST_F(LoadgenTest, OpenLoopCountsMatchTheServer) {
  nlohmann::json r = Load({"--rpc=classify", "--model=vit-single", "--image=" + Image(), "--mode=open",
                           "--rate=80", "--requests=40"});
  ASSERT_TRUE(r.contains("ok")) << r.dump();
  EXPECT_GE(r["ok"].get<int64_t>(), 40);
  EXPECT_TRUE(r["errors"].empty()) << r.dump() << "\nthe server's log:\n" << server_->log();
  EXPECT_EQ(ServerCount("vit-single", "Classify"), r["ok"].get<int64_t>());
  EXPECT_EQ(r["mode"], "open");
  EXPECT_GT(r["throughput"].get<double>(), 20.0);
}

TEST_F(LoadgenTest, GenerateReportsTokenTimings) {
  nlohmann::json r = Load({"--rpc=generate", "--model=lm", "--max_new_tokens=16", "--mode=closed",
                           "--concurrency=4", "--requests=12"});
  ASSERT_TRUE(r.contains("tokens_per_second")) << r.dump();
  EXPECT_GT(r["tokens_per_second"].get<double>(), 0.0);
  EXPECT_GT(r["ttft_ms"]["p50"].get<double>(), 0.0);
  EXPECT_LT(r["ttft_ms"]["p50"].get<double>(), r["latency_ms"]["p50"].get<double>());
  EXPECT_GT(r["tpot_ms"]["p50"].get<double>(), 0.0);
  EXPECT_EQ(ServerCount("lm", "Generate"), r["ok"].get<int64_t>());
}

}  // namespace
}  // namespace elliptical
