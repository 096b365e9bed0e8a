// The serving engine through the real server binary on loopback: dynamic batching, segmentation,
// streamed generation with continuous batching, overload, deadlines, cancellation, bad input
// and draining on SIGTERM.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <future>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "elliptical/v1/inference_service.grpc.pb.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "tests/support/fixtures.h"
#include "tests/support/float32_tolerance.h"
#include "tests/support/process.h"
#include "tests/support/serving_repository.h"

namespace elliptical {
namespace {

namespace fs = std::filesystem;
using testing::FixturesDir;
using testing::ModelFixturesDir;
using testing::ReadFileBytes;
using testing::ServerProcess;
using Clock = std::chrono::steady_clock;

std::string MakeRepository() {
  static int count = 0;
  return testing::MakeServingRepository("serving" + std::to_string(count++));
}

v1::Image PngImage(const std::string& path) {
  v1::Image image;
  image.set_encoded(ReadFileBytes(path));
  return image;
}

class ServingTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    repo_ = new std::string(MakeRepository());
    server_ = new ServerProcess(testing::ServerBinary(),
                                {"--model_repository=" + *repo_, "--compute_threads=1",
                                 "--max_message_bytes=1000000"});
  }
  static void TearDownTestSuite() {
    delete server_;
    fs::remove_all(*repo_);
    delete repo_;
  }
  void SetUp() override { ASSERT_TRUE(server_->ok()) << server_->log(); }

  static std::unique_ptr<v1::InferenceService::Stub> Stub() {
    return v1::InferenceService::NewStub(server_->channel());
  }
  static void Deadline(grpc::ClientContext* c, int ms) {
    c->set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(ms));
  }
  static grpc::Status Classify(const std::string& model, int images, v1::ClassifyResponse* response,
                               int deadline_ms = 60000) {
    v1::ClassifyRequest request;
    request.set_model_name(model);
    for (int i = 0; i < images; ++i) {
      *request.add_images() = PngImage(FixturesDir() + "/images/pattern_" + std::to_string(i % 4) + ".png");
    }
    grpc::ClientContext context;
    Deadline(&context, deadline_ms);
    return Stub()->Classify(&context, request, response);
  }

  struct Generated {
    grpc::Status status;
    std::string text;
    std::vector<Clock::time_point> arrivals;
    v1::GenerationSummary summary;
  };
  static Generated Generate(v1::GenerateRequest request, int deadline_ms = 60000,
                            std::function<void(grpc::ClientContext*, int)> on_token = nullptr) {
    grpc::ClientContext context;
    Deadline(&context, deadline_ms);
    auto reader = Stub()->Generate(&context, request);
    Generated out;
    v1::GenerateResponse message;
    while (reader->Read(&message)) {
      if (message.has_summary()) {
        out.text += message.token().text();  // held-back text only
      } else {
        for (const v1::Token& token : message.tokens()) {  // several when the server coalesced
          out.text += token.text();
          out.arrivals.push_back(Clock::now());
          if (on_token) on_token(&context, static_cast<int>(out.arrivals.size()));
        }
      }
      if (message.has_summary()) out.summary = message.summary();
    }
    out.status = reader->Finish();
    return out;
  }
  static v1::GenerateRequest Prompt(const std::string& model, const std::string& prompt, int tokens) {
    v1::GenerateRequest r;
    r.set_model_name(model);
    r.set_prompt(prompt);
    r.set_max_new_tokens(tokens);
    return r;
  }

  static std::string* repo_;
  static ServerProcess* server_;
};
std::string* ServingTest::repo_ = nullptr;
ServerProcess* ServingTest::server_ = nullptr;

TEST_F(ServingTest, ConcurrentRequestsGetTheirOwnAnswers) {
  v1::ClassifyResponse alone;
  ASSERT_TRUE(Classify("vit-single", 4, &alone).ok());
  EXPECT_EQ(alone.timing().batch_size(), 1u);

  std::vector<std::future<std::pair<grpc::Status, v1::ClassifyResponse>>> calls;
  for (int i = 0; i < 4; ++i) {
    calls.push_back(std::async(std::launch::async, [] {
      v1::ClassifyResponse r;
      grpc::Status s = Classify("vit-batched", 4, &r);
      return std::make_pair(s, r);
    }));
  }
  for (auto& call : calls) {
    auto [status, response] = call.get();
    ASSERT_TRUE(status.ok()) << status.error_message();
    ASSERT_EQ(response.classifications_size(), 4);
    for (int i = 0; i < 4; ++i) {
      const auto& got = response.classifications(i).classes(0);
      const auto& want = alone.classifications(i).classes(0);
      EXPECT_EQ(got.class_id(), want.class_id());
      // The same vit-test weights (3 blocks, MLP width 96) in another batch: float32_tolerance.h.
      EXPECT_NEAR(got.probability(), want.probability(),
                  2 * elliptical::testing::TransformerReorderTolerance(3, 96));
    }
  }
  // How batches form is the batcher's, tested deterministically in
  // tests/server/dynamic_batcher_test.cc; here each request got its own answers.
}

TEST_F(ServingTest, RequestExpiringInTheQueueNeverRuns) {
  v1::ClassifyResponse response;
  const auto start = Clock::now();
  grpc::Status s = Classify("vit-slow", 1, &response, /*deadline_ms=*/200);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED) << s.error_message();
  EXPECT_LT(Clock::now() - start, std::chrono::milliseconds(1400)) << "it waited for the batch";
}

TEST_F(ServingTest, FullQueueIsRefusedWithResourceExhausted) {
  auto first = std::async(std::launch::async, [] {
    v1::ClassifyResponse r;
    return Classify("vit-slow", 2, &r);  // fills the queue of two items for 1.5 s
  });
  // Its two items are queued: the server says so (sampled once a second).
  ASSERT_TRUE(testing::AwaitMetric(server_->metrics_port(), "elliptical_queue_items{model=\"vit-slow\"}", 2));
  v1::ClassifyResponse response;
  grpc::Status s = Classify("vit-slow", 1, &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_NE(s.error_message().find("overloaded"), std::string::npos) << s.error_message();
  grpc::Status accepted = first.get();
  EXPECT_TRUE(accepted.ok()) << "the accepted request must still complete: " << accepted.error_message() << server_->log();
}

TEST_F(ServingTest, SegmentReturnsAMaskPerImage) {
  v1::SegmentRequest request;
  request.set_model_name("seg");
  *request.add_images() = PngImage(ModelFixturesDir() + "/segmenter/images/large_70x45.png");
  *request.add_images() = PngImage(ModelFixturesDir() + "/segmenter/images/small_20x28.png");
  request.set_return_attention_stats(true);
  grpc::ClientContext context;
  Deadline(&context, 60000);
  v1::SegmentResponse response;
  ASSERT_TRUE(Stub()->Segment(&context, request, &response).ok());
  ASSERT_EQ(response.masks_size(), 2);
  EXPECT_EQ(response.masks(0).width_px(), 70u);
  EXPECT_EQ(response.masks(0).height_px(), 45u);
  EXPECT_EQ(response.masks(0).class_ids_u8().size(), 70u * 45u);
  EXPECT_EQ(response.masks(1).class_ids_u8().size(), 20u * 28u);
  EXPECT_EQ(response.masks(0).labels_size(), 5);
  EXPECT_GT(response.masks(0).attention_stats().layers_size(), 0);
}

TEST_F(ServingTest, TokensStreamAsTheyAreProduced) {
  Generated g = Generate(Prompt("lm", "The quick brown fox", 120));
  ASSERT_TRUE(g.status.ok()) << g.status.error_message();
  ASSERT_EQ(g.arrivals.size(), 120u);
  EXPECT_EQ(g.summary.generated_tokens(), 120u);
  EXPECT_EQ(g.summary.finish_reason(), v1::FINISH_REASON_LENGTH);
  EXPECT_GT(g.summary.prompt_tokens(), 0u);
  // The first token reached the client well before the last was computed.
  EXPECT_GT(g.arrivals.back() - g.arrivals.front(), std::chrono::milliseconds(20));
  EXPECT_LT(g.summary.time_to_first_token_us(), g.summary.total_us() / 2);
}

// A client that reads slowly: it takes the first message, then waits until the server has
// generated every token (its generated-token count says so, recorded before the final event is
// queued) before it reads on. Returns each message's tokens (texts), and the summary.
struct SlowRead {
  grpc::Status status;
  std::vector<std::vector<std::string>> messages;  // `tokens` of each message with any
  std::vector<std::string> token_field;             // `token` of each of those messages
  std::string held_back;                            // the final message's `token` text
  v1::GenerationSummary summary;
};

TEST_F(ServingTest, AClientReadingOnlyTokenGetsEveryTokenInIt) {
  constexpr int kTokens = 40;
  const std::string series = "elliptical_generated_tokens_total{model=\"lm\"}";
  auto slow_read = [&](bool coalesce) {
    v1::GenerateRequest r = Prompt("lm", "And it came to pass", kTokens);
    r.set_coalesce_tokens(coalesce);
    const double before = testing::MetricValue(server_->metrics_port(), series);
    grpc::ClientContext context;
    Deadline(&context, 60000);
    auto reader = Stub()->Generate(&context, r);
    SlowRead out;
    v1::GenerateResponse m;
    bool first = true;
    while (reader->Read(&m)) {
      if (m.has_summary()) {
        out.summary = m.summary();
        out.held_back = m.token().text();
      } else if (m.tokens_size() > 0) {
        out.messages.emplace_back();
        for (const v1::Token& t : m.tokens()) out.messages.back().push_back(t.text());
        out.token_field.push_back(m.token().text());
      }
      if (first) {
        first = false;
        EXPECT_TRUE(testing::AwaitMetric(server_->metrics_port(), series, before + kTokens))
            << "the server never finished generating";
      }
    }
    out.status = reader->Finish();
    return out;
  };

  const SlowRead plain = slow_read(false);
  ASSERT_TRUE(plain.status.ok()) << plain.status.error_message();
  ASSERT_EQ(plain.summary.generated_tokens(), static_cast<uint32_t>(kTokens));
  // One token per message, and `token` is it: reading `token` alone gives the whole text.
  ASSERT_EQ(plain.messages.size(), static_cast<size_t>(kTokens));
  std::string from_token_only;
  for (size_t i = 0; i < plain.messages.size(); ++i) {
    ASSERT_EQ(plain.messages[i].size(), 1u) << "message " << i;
    EXPECT_EQ(plain.token_field[i], plain.messages[i][0]);
    from_token_only += plain.token_field[i];
  }
  from_token_only += plain.held_back;

  // A client that says it reads `tokens` may get several per message, and the same text. How
  // many messages it gets is not asserted: gRPC completes a write once its transport buffers it,
  // not once the client reads, so whether tokens queue up behind a write depends on how fast the
  // model runs against the transport (under ASan they often do not).
  const SlowRead coalesced = slow_read(true);
  ASSERT_TRUE(coalesced.status.ok()) << coalesced.status.error_message();
  ASSERT_EQ(coalesced.summary.generated_tokens(), static_cast<uint32_t>(kTokens));
  std::string from_tokens;
  for (const auto& message : coalesced.messages) {
    for (const std::string& t : message) from_tokens += t;
  }
  from_tokens += coalesced.held_back;
  EXPECT_EQ(from_tokens, from_token_only);
  EXPECT_FALSE(from_token_only.empty());
}

TEST_F(ServingTest, ANewRequestJoinsWhileAnotherGenerates) {
  std::promise<void> started;
  auto long_run = std::async(std::launch::async, [&] {
    bool told = false;
    return Generate(Prompt("lm", "Once upon a time", 1500), 60000, [&](grpc::ClientContext*, int n) {
      if (n == 5 && !told) {
        told = true;
        started.set_value();
      }
    });
  });
  started.get_future().wait();
  Generated shorter = Generate(Prompt("lm", "Hello", 10));
  const auto short_done = Clock::now();
  Generated longer = long_run.get();
  ASSERT_TRUE(shorter.status.ok()) << shorter.status.error_message();
  ASSERT_TRUE(longer.status.ok()) << longer.status.error_message();
  EXPECT_EQ(shorter.arrivals.size(), 10u);
  // The short request did not wait for the long one to finish.
  EXPECT_LT(short_done, longer.arrivals.back());
}

TEST_F(ServingTest, SameSeedSameText) {
  v1::GenerateRequest r = Prompt("lm", "In the beginning", 30);
  r.set_temperature(1.0f);
  r.set_top_p(0.95f);
  r.set_top_k(50);
  r.set_seed(1234);
  Generated a = Generate(r), b = Generate(r);
  ASSERT_TRUE(a.status.ok() && b.status.ok());
  EXPECT_EQ(a.text, b.text);
  EXPECT_FALSE(a.text.empty());
}

TEST_F(ServingTest, StopSequenceEndsGenerationWithoutItsText) {
  Generated free_run = Generate(Prompt("lm", "We the people", 60));
  ASSERT_TRUE(free_run.status.ok());
  ASSERT_GE(free_run.text.size(), 8u);
  // Greedy decoding repeats itself: stop at a piece of what it produced.
  const std::string stop = free_run.text.substr(free_run.text.size() / 2, 3);
  v1::GenerateRequest r = Prompt("lm", "We the people", 60);
  r.add_stop(stop);
  Generated stopped = Generate(r);
  ASSERT_TRUE(stopped.status.ok());
  EXPECT_EQ(stopped.summary.finish_reason(), v1::FINISH_REASON_STOP_SEQUENCE);
  EXPECT_EQ(stopped.text.find(stop), std::string::npos) << stopped.text;
  EXPECT_EQ(free_run.text.rfind(stopped.text, 0), 0u) << "the stopped text is a prefix of the free run";
}

TEST_F(ServingTest, CancellingMidStreamFreesTheSlot) {
  // lm-one-slot runs one sequence at a time: the second request can only run once the first,
  // cancelled after a few tokens of 1500, has left.
  Generated cancelled = Generate(Prompt("lm-one-slot", "Long story", 1500), 60000,
                                 [](grpc::ClientContext* c, int n) {
                                   if (n == 3) c->TryCancel();
                                 });
  EXPECT_EQ(cancelled.status.error_code(), grpc::StatusCode::CANCELLED);
  Generated next = Generate(Prompt("lm-one-slot", "Short", 5), /*deadline_ms=*/10000);
  EXPECT_TRUE(next.status.ok()) << next.status.error_message();
  EXPECT_EQ(next.arrivals.size(), 5u);
}

TEST_F(ServingTest, BadRequestsGetClearStatusesAndTheServerStaysUp) {
  Generated empty = Generate(Prompt("lm", "", 5));
  EXPECT_EQ(empty.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  Generated absurd = Generate(Prompt("lm", "Hi", 1000000));
  EXPECT_EQ(absurd.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(absurd.status.error_message().find("max_new_tokens"), std::string::npos);
  Generated unknown = Generate(Prompt("no-such-model", "Hi", 5));
  EXPECT_EQ(unknown.status.error_code(), grpc::StatusCode::NOT_FOUND);
  Generated wrong_family = Generate(Prompt("seg", "Hi", 5));
  EXPECT_EQ(wrong_family.status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  v1::GenerateRequest nan_top_p = Prompt("lm", "Hi", 5);
  nan_top_p.set_top_p(std::nanf(""));
  Generated refused = Generate(nan_top_p);
  EXPECT_EQ(refused.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(refused.status.error_message().find("top_p"), std::string::npos) << refused.status.error_message();

  v1::SegmentRequest corrupt;
  corrupt.set_model_name("seg");
  corrupt.add_images()->set_encoded("not an image at all");
  grpc::ClientContext c1;
  v1::SegmentResponse sr;
  grpc::Status s = Stub()->Segment(&c1, corrupt, &sr);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("images[0]"), std::string::npos) << s.error_message();

  v1::ClassifyRequest huge;
  huge.set_model_name("vit-batched");
  huge.add_images()->set_encoded(std::string(2000000, 'x'));
  grpc::ClientContext c2;
  v1::ClassifyResponse cr;
  EXPECT_EQ(Stub()->Classify(&c2, huge, &cr).error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);

  v1::ClassifyResponse fine;
  EXPECT_TRUE(Classify("vit-batched", 1, &fine).ok()) << "the server survived";
}

TEST_F(ServingTest, HealthIsReportedPerModel) {
  auto health = grpc::health::v1::Health::NewStub(server_->channel());
  for (const char* model : {"vit-batched", "seg", "lm"}) {
    grpc::ClientContext context;
    grpc::health::v1::HealthCheckRequest request;
    request.set_service(model);
    grpc::health::v1::HealthCheckResponse response;
    ASSERT_TRUE(health->Check(&context, request, &response).ok()) << model;
    EXPECT_EQ(response.status(), grpc::health::v1::HealthCheckResponse::SERVING) << model;
  }
}

TEST_F(ServingTest, CliStreamsGeneratedText) {
  testing::CommandResult r = testing::RunCommand(
      {testing::ClientBinary(), "--server=" + server_->address(), "--model=lm",
       "--max_new_tokens=12", "generate", "The", "keeper"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.rfind("The keeper", 0), 0u) << r.out;
  EXPECT_GT(r.out.size(), std::string("The keeper\n").size());
  EXPECT_NE(r.err.find("12 generated"), std::string::npos) << r.err;
}

// Width and height from a PNG's IHDR chunk.
std::pair<int, int> PngSize(const std::string& bytes) {
  auto be32 = [&](size_t at) {
    return (static_cast<unsigned char>(bytes[at]) << 24) | (static_cast<unsigned char>(bytes[at + 1]) << 16) |
           (static_cast<unsigned char>(bytes[at + 2]) << 8) | static_cast<unsigned char>(bytes[at + 3]);
  };
  if (bytes.size() < 24 || bytes.compare(1, 3, "PNG") != 0) return {0, 0};
  return {be32(16), be32(20)};
}

TEST_F(ServingTest, CliWritesTheMaskAndAnOverlay) {
  const std::string prefix = testing::BuildDir() + "/cli_segment_" + std::to_string(getpid());
  testing::CommandResult r = testing::RunCommand(
      {testing::ClientBinary(), "--server=" + server_->address(), "--model=seg", "--out=" + prefix,
       "segment", ModelFixturesDir() + "/segmenter/images/large_70x45.png"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const char* suffix : {".mask.png", ".overlay.png"}) {
    EXPECT_EQ(PngSize(ReadFileBytes(prefix + suffix)), std::make_pair(70, 45)) << suffix;
    fs::remove(prefix + suffix);
  }
  EXPECT_NE(r.out.find("%"), std::string::npos) << r.out;  // the class shares
  testing::CommandResult bad = testing::RunCommand(
      {testing::ClientBinary(), "--server=" + server_->address(), "--model=lm", "segment",
       ModelFixturesDir() + "/segmenter/images/large_70x45.png"});
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.err.find("FAILED_PRECONDITION"), std::string::npos) << bad.err;
}

TEST(ServingDrain, SigtermLetsEveryAcceptedRequestFinish) {
  const std::string repo = MakeRepository();
  ServerProcess server(testing::ServerBinary(), {"--model_repository=" + repo, "--compute_threads=1"});
  ASSERT_TRUE(server.ok()) << server.log();
  auto stub = v1::InferenceService::NewStub(server.channel());
  std::vector<std::future<grpc::Status>> calls;
  for (int i = 0; i < 6; ++i) {
    calls.push_back(std::async(std::launch::async, [&stub] {
      v1::ClassifyRequest request;
      request.set_model_name("vit-batched");  // waits up to 300 ms for its batch
      *request.add_images() = PngImage(FixturesDir() + "/images/pattern_0.png");
      grpc::ClientContext context;
      context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
      v1::ClassifyResponse response;
      return stub->Classify(&context, request, &response);
    }));
  }
  auto generation = std::async(std::launch::async, [&stub] {
    v1::GenerateRequest r;
    r.set_model_name("lm");
    r.set_prompt("Drain me");
    // Long enough to be still running when SIGTERM comes, whatever the machine's speed.
    r.set_max_new_tokens(1800);
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    auto reader = stub->Generate(&context, r);
    v1::GenerateResponse m;
    int tokens = 0;
    while (reader->Read(&m)) tokens += m.has_summary() ? 0 : m.tokens_size();
    grpc::Status s = reader->Finish();
    return std::make_pair(s, tokens);
  });
  // Every call reached the server (in flight or already answered), and the generation is still
  // running, before SIGTERM.
  const auto accepted = [&server] {
    const int m = server.metrics_port();
    auto value = [m](const std::string& series) {
      const double v = testing::MetricValue(m, series);
      return std::isnan(v) ? 0.0 : v;
    };
    return value("elliptical_in_flight_requests{model=\"vit-batched\",protocol=\"elliptical\",rpc=\"Classify\"}") +
                   value("elliptical_requests_total{code=\"OK\",model=\"vit-batched\",protocol=\"elliptical\",rpc=\"Classify\"}") ==
               6 &&
           value("elliptical_in_flight_requests{model=\"lm\",protocol=\"elliptical\",rpc=\"Generate\"}") == 1;
  };
  // The two series are read in two scrapes, so a call finishing between them misreads as not
  // accepted: poll until one reading holds, and keep that reading.
  bool accepted_now = false;
  for (int i = 0; i < 600 && !(accepted_now = accepted()); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_TRUE(accepted_now) << server.log();
  auto terminated = std::async(std::launch::async, [&server] { return server.Terminate(); });
  {
    // Health turns NOT_SERVING when the drain starts; a call after that is refused.
    auto health = grpc::health::v1::Health::NewStub(server.channel());
    bool draining = false;
    for (int i = 0; i < 600 && !draining; ++i) {
      grpc::ClientContext c;
      c.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
      grpc::health::v1::HealthCheckResponse r;
      grpc::Status hs = health->Check(&c, {}, &r);
      draining = !hs.ok() || r.status() != grpc::health::v1::HealthCheckResponse::SERVING;
      if (!draining) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ASSERT_TRUE(draining);
  }
  {
    v1::ClassifyRequest late;
    late.set_model_name("vit-batched");
    *late.add_images() = PngImage(FixturesDir() + "/images/pattern_1.png");
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    v1::ClassifyResponse response;
    EXPECT_FALSE(stub->Classify(&context, late, &response).ok()) << "a call after SIGTERM was accepted";
  }
  for (auto& call : calls) {
    grpc::Status s = call.get();
    EXPECT_TRUE(s.ok()) << s.error_message();
  }
  auto [gen_status, tokens] = generation.get();
  EXPECT_TRUE(gen_status.ok()) << gen_status.error_message();
  EXPECT_EQ(tokens, 1800);
  EXPECT_EQ(terminated.get(), 0) << server.log();
  fs::remove_all(repo);
}

}  // namespace
}  // namespace elliptical

namespace elliptical {
namespace {

TEST(ServingConfig, AMisspelledKeyFailsTheLoadNamingItAndTheFile) {
  namespace fs = std::filesystem;
  const fs::path repo = fs::path(testing::BuildDir()) / ("misspelled_repo_" + std::to_string(getpid()));
  fs::remove_all(repo);
  const fs::path vit = fs::path(testing::FixturesDir()) / "models" / "vit-test";
  testing::AddModel(repo, "vit-typo", vit, {{"batching", {{"max_batch_sise", 4}}}});
  testing::AddModel(repo, "vit-ok", vit, {{"batching", {{"max_batch_size", 4}}}});
  ServerProcess server(testing::ServerBinary(), {"--model_repository=" + repo.string(), "--compute_threads=1"});
  ASSERT_TRUE(server.ok()) << server.log();
  auto stub = v1::InferenceService::NewStub(server.channel());
  grpc::ClientContext context;
  v1::ListModelsResponse list;
  ASSERT_TRUE(stub->ListModels(&context, {}, &list).ok());
  ASSERT_EQ(list.models_size(), 2);
  const v1::ModelSummary& ok = list.models(0);
  const v1::ModelSummary& typo = list.models(1);
  EXPECT_EQ(ok.status().state(), v1::MODEL_STATE_READY);
  EXPECT_EQ(typo.status().state(), v1::MODEL_STATE_FAILED);
  const std::string& reason = typo.status().reason();
  EXPECT_NE(reason.find("vit-typo/config.json"), std::string::npos) << reason;
  EXPECT_NE(reason.find("\"batching.max_batch_sise\""), std::string::npos) << reason;
  EXPECT_NE(reason.find("did you mean \"max_batch_size\""), std::string::npos) << reason;
  fs::remove_all(repo);
}

}  // namespace
}  // namespace elliptical
