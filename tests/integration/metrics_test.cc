// The metrics endpoint of the real server, checked by real Prometheus tools: promtool accepts
// the exposition, a real Prometheus server scrapes it on loopback and answers queries with the
// numbers the traffic implies, and every metric the deploy/ files use is exported.
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "elliptical/v1/inference_service.grpc.pb.h"
#include "tests/support/fixtures.h"
#include "tests/support/process.h"
#include "tests/support/serving_repository.h"

namespace elliptical {
namespace {

namespace fs = std::filesystem;
using testing::ChildProcess;
using testing::CommandResult;
using testing::RunCommand;
using testing::ServerProcess;

constexpr int kClassifyCalls = 20;

// The repository's deploy/ files (the build passes the source directory in).
std::string SourceDir() { return ELLIPTICAL_SOURCE_DIR; }

CommandResult Shell(const std::string& command) { return RunCommand({"/bin/bash", "-c", command}, 60); }

class MetricsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    repo_ = new std::string(testing::MakeServingRepository("metrics"));
    server_ = new ServerProcess(testing::ServerBinary(), {"--model_repository=" + *repo_,
                                                          "--compute_threads=1",
                                                          "--attention_stats_sample_rate=1"});
    if (!server_->ok()) return;
    auto stub = v1::InferenceService::NewStub(server_->channel());
    for (int i = 0; i < kClassifyCalls; ++i) {
      v1::ClassifyRequest request;
      request.set_model_name("vit-single");
      request.add_images()->set_encoded(
          testing::ReadFileBytes(testing::FixturesDir() + "/images/pattern_" + std::to_string(i % 4) + ".png"));
      grpc::ClientContext context;
      v1::ClassifyResponse response;
      ok_calls_ += stub->Classify(&context, request, &response).ok() ? 1 : 0;
    }
    for (int i = 0; i < 2; ++i) {
      v1::GenerateRequest request;
      request.set_model_name("lm");
      request.set_prompt("The keeper");
      request.set_max_new_tokens(8);
      grpc::ClientContext context;
      auto reader = stub->Generate(&context, request);
      v1::GenerateResponse m;
      while (reader->Read(&m)) {
      }
      reader->Finish();
    }
    grpc::ClientContext context;
    v1::ClassifyRequest unknown;
    unknown.set_model_name("no-such-model");
    v1::ClassifyResponse response;
    stub->Classify(&context, unknown, &response);
  }
  static void TearDownTestSuite() {
    delete server_;
    fs::remove_all(*repo_);
    delete repo_;
  }
  void SetUp() override {
    ASSERT_TRUE(server_->ok()) << server_->log();
    ASSERT_EQ(ok_calls_, kClassifyCalls);
  }

  static std::string Url() { return "http://127.0.0.1:" + std::to_string(server_->metrics_port()) + "/metrics"; }
  static std::string Scrape() { return Shell("curl -sf " + Url()).out; }

  static std::string* repo_;
  static ServerProcess* server_;
  static int ok_calls_;
};
std::string* MetricsTest::repo_ = nullptr;
ServerProcess* MetricsTest::server_ = nullptr;
int MetricsTest::ok_calls_ = 0;

TEST_F(MetricsTest, PromtoolAcceptsTheLiveEndpoint) {
  CommandResult r = Shell("curl -sf " + Url() + " | promtool check metrics");
  // Exit 3 is naming notes only (1 would be a parse error). Our own names follow the conventions;
  // the standard names routers read (Triton's counters without _total, vLLM's colons) cannot.
  EXPECT_TRUE(r.exit_code == 0 || r.exit_code == 3) << r.out << r.err;
  std::istringstream notes(r.out + r.err);
  for (std::string line; std::getline(notes, line);) {
    if (line.empty()) continue;
    EXPECT_TRUE(line.rfind("nv_inference_", 0) == 0 || line.rfind("vllm:", 0) == 0)
        << "promtool notes one of our own names: " << line;
  }
  const std::string text = Scrape();
  EXPECT_NE(text.find("elliptical_requests_total{code=\"OK\",model=\"vit-single\",protocol=\"elliptical\",rpc=\"Classify\"} 20"),
            std::string::npos)
      << text.substr(0, 3000);
  // An unknown model name does not become a label value.
  EXPECT_EQ(text.find("no-such-model"), std::string::npos);
  EXPECT_NE(text.find("model=\"unknown\""), std::string::npos);
}

TEST_F(MetricsTest, EveryMetricTheDeployFilesUseIsExported) {
  const std::string text = Scrape();
  std::set<std::string> exported;
  const std::regex type_line("# TYPE (elliptical_[a-z_]+) ");
  for (auto it = std::sregex_iterator(text.begin(), text.end(), type_line); it != std::sregex_iterator(); ++it) {
    exported.insert((*it)[1]);
  }
  ASSERT_GT(exported.size(), 15u);
  const std::regex used("elliptical_[a-z_]+");
  int checked = 0;
  for (const char* file : {"deploy/prometheus/alerts.yml", "deploy/grafana/dashboard.json"}) {
    const std::string content = testing::ReadFileBytes(SourceDir() + "/" + file);
    ASSERT_FALSE(content.empty()) << file;
    for (auto it = std::sregex_iterator(content.begin(), content.end(), used); it != std::sregex_iterator(); ++it) {
      std::string name = it->str();
      for (const char* suffix : {"_bucket", "_sum", "_count"}) {
        const std::string s = suffix;
        if (name.size() > s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0 &&
            !exported.count(name)) {
          name = name.substr(0, name.size() - s.size());
        }
      }
      if (name == "elliptical_server") continue;  // the job and dashboard names
      EXPECT_TRUE(exported.count(name)) << file << " uses " << name << ", which the server does not export";
      ++checked;
    }
  }
  EXPECT_GT(checked, 10);
  CommandResult rules = Shell("promtool check rules " + SourceDir() + "/deploy/prometheus/alerts.yml");
  EXPECT_EQ(rules.exit_code, 0) << rules.out << rules.err;
}

// Asks Prometheus' HTTP API for an instant query; returns the first sample's value or NaN.
double Query(int port, const std::string& promql) {
  CommandResult r = Shell("curl -sfG http://127.0.0.1:" + std::to_string(port) +
                          "/api/v1/query --data-urlencode 'query=" + promql + "'");
  if (r.exit_code != 0) return NAN;
  nlohmann::json j = nlohmann::json::parse(r.out, nullptr, false);
  if (j.is_discarded() || j["status"] != "success" || j["data"]["result"].empty()) return NAN;
  return std::stod(j["data"]["result"][0]["value"][1].get<std::string>());
}

TEST_F(MetricsTest, RealPrometheusScrapesAndAnswers) {
  const fs::path dir = fs::path(testing::BuildDir()) / ("prometheus_" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir / "data");
  std::ofstream(dir / "prometheus.yml") << "global:\n  scrape_interval: 1s\n"
                                        << "scrape_configs:\n  - job_name: elliptical-server\n"
                                        << "    static_configs:\n      - targets: ['127.0.0.1:"
                                        << server_->metrics_port() << "']\n";
  const int port = testing::FreeLoopbackPort();
  ChildProcess prometheus({"prometheus", "--config.file=" + (dir / "prometheus.yml").string(),
                           "--storage.tsdb.path=" + (dir / "data").string(),
                           "--web.listen-address=127.0.0.1:" + std::to_string(port)});
  // Wait for two scrapes of the finished traffic.
  double count = NAN;
  for (int i = 0; i < 300 && !(count == kClassifyCalls); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    count = Query(port, "sum(elliptical_requests_total{model=\"vit-single\",rpc=\"Classify\",code=\"OK\"})");
  }
  ASSERT_EQ(count, kClassifyCalls) << "Prometheus log:\n" << prometheus.log();

  const double p50 = Query(port,
      "histogram_quantile(0.5, sum by (le) (elliptical_request_duration_seconds_bucket{model=\"vit-single\"}))");
  EXPECT_GT(p50, 0.0);
  EXPECT_LT(p50, 5.0) << "a 32-pixel ViT answers in well under 5 s";

  // Attention statistics: every sampled image adds 2 elliptical layers' m entries (3 heads x 16).
  const double m_entries = Query(port, "sum(elliptical_attention_metric_count{model=\"vit-single\",layer=\"1\"})");
  EXPECT_EQ(m_entries, kClassifyCalls * 48.0);
  const double cosine = Query(port,
      "sum(elliptical_token_cosine_similarity_sum{model=\"vit-single\",layer=\"2\"}) / "
      "sum(elliptical_token_cosine_similarity_count{model=\"vit-single\",layer=\"2\"})");
  EXPECT_GT(cosine, -1.0);
  EXPECT_LT(cosine, 1.0);
  EXPECT_EQ(Query(port, "sum(elliptical_generated_tokens_total{model=\"lm\"})"), 16.0);
  // The language model's statistics come from its sampled prefills (two prompts).
  EXPECT_EQ(Query(port, "sum(elliptical_token_cosine_similarity_count{model=\"lm\",layer=\"0\"})"), 2.0);
  EXPECT_EQ(Query(port, "sum(elliptical_time_to_first_token_seconds_count{model=\"lm\"})"), 2.0);
  EXPECT_EQ(Query(port, "elliptical_model_ready{model=\"seg\"}"), 1.0);
  EXPECT_GT(Query(port, "elliptical_process_resident_memory_bytes"), 1e6);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace elliptical
