// The real server binary on a loopback port, called by the real client binary and by a gRPC
// stub: answers equal the Python reference, bad input gets clear statuses, health is right.
#include <cstdlib>
#include <sstream>

#include <gtest/gtest.h>

#include "elliptical/v1/inference_service.grpc.pb.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "tests/support/fixtures.h"
#include "tests/support/process.h"

namespace elliptical {
namespace {

using testing::CommandResult;
using testing::ExpectedProbabilities;
using testing::FixturesDir;
using testing::ReadFileBytes;
using testing::RunCommand;
using testing::ServerProcess;

class ClassifyServerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    server_ = new ServerProcess(testing::ServerBinary(),
                                {"--model_repository=" + FixturesDir() + "/models",
                                 "--compute_threads=1", "--max_images_per_request=8"});
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  void SetUp() override { ASSERT_TRUE(server_->ok()) << "server did not come up:\n" << server_->log(); }

  std::unique_ptr<v1::InferenceService::Stub> Stub() {
    return v1::InferenceService::NewStub(server_->channel());
  }
  CommandResult Client(std::vector<std::string> args) {
    args.insert(args.begin(), {testing::ClientBinary(), "--server=" + server_->address()});
    return RunCommand(args);
  }
  grpc::Status Classify(const v1::ClassifyRequest& request, v1::ClassifyResponse* response) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    return Stub()->Classify(&context, request, response);
  }

  static ServerProcess* server_;
};
ServerProcess* ClassifyServerTest::server_ = nullptr;

TEST_F(ClassifyServerTest, ClientPrintsTheReferenceTopClass) {
  const nlohmann::json expected = ExpectedProbabilities();
  const std::string image = FixturesDir() + "/images/pattern_1.png";
  CommandResult r = Client({"classify", "--model=vit-test", "--top_k=3", image});
  ASSERT_EQ(r.exit_code, 0) << r.err;

  std::vector<double> probs = expected["pattern_1.png"]["elliptical"].get<std::vector<double>>();
  const int best = std::max_element(probs.begin(), probs.end()) - probs.begin();
  const std::vector<std::string> labels = {"apple", "bridge", "cloud",  "dune",   "ember",
                                           "fjord", "glacier", "harbor", "island", "jungle"};
  // First ranked line: "   1  <label>  <probability>  (class <id>)"
  std::istringstream lines(r.out);
  std::string header, first;
  std::getline(lines, header);
  std::getline(lines, first);
  std::istringstream fields(first);
  int rank;
  std::string label;
  double probability;
  fields >> rank >> label >> probability;
  EXPECT_EQ(rank, 1);
  EXPECT_EQ(label, labels[best]) << r.out;
  EXPECT_NEAR(probability, probs[best], 1e-4);
}

TEST_F(ClassifyServerTest, BatchOfImagesMatchesReferenceInOrder) {
  const nlohmann::json expected = ExpectedProbabilities();
  v1::ClassifyRequest request;
  request.set_model_name("vit-test");
  request.set_top_k(10);
  const std::vector<std::string> names = {"pattern_0.png", "wide_80x60.png", "pattern_3.png"};
  for (const std::string& name : names) {
    request.add_images()->set_encoded(ReadFileBytes(FixturesDir() + "/images/" + name));
  }
  v1::ClassifyResponse response;
  grpc::Status status = Classify(request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(response.classifications_size(), 3);
  EXPECT_EQ(response.timing().batch_size(), 3u);
  EXPECT_GT(response.timing().decode_us(), 0u) << "three PNGs were inflated and unfiltered";
  for (int i = 0; i < 3; ++i) {
    const auto& want = expected[names[i]]["elliptical"];
    ASSERT_EQ(response.classifications(i).classes_size(), 10);
    double previous = 2;
    for (const auto& c : response.classifications(i).classes()) {
      EXPECT_NEAR(c.probability(), want[c.class_id()].get<double>(), 1e-4) << names[i];
      EXPECT_LE(c.probability(), previous);  // best first
      previous = c.probability();
    }
  }
}

TEST_F(ClassifyServerTest, JpegAndRawPixelsAreAccepted) {
  v1::ClassifyRequest request;
  request.set_model_name("vit-test");
  request.add_images()->set_encoded(ReadFileBytes(FixturesDir() + "/images/photo.jpg"));
  v1::RawImage* raw = request.add_images()->mutable_raw();
  raw->set_width_px(2);
  raw->set_height_px(2);
  raw->set_channels(1);
  raw->set_pixels(std::string("\x00\x40\x80\xff", 4));
  v1::ClassifyResponse response;
  grpc::Status status = Classify(request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.classifications_size(), 2);
}

// top_k is capped at the number of classes up to --max_top_k, and refused beyond it: 2^31 once
// turned negative in a signed cast and crashed the server, 2^32 - 1 returned no classes.
TEST_F(ClassifyServerTest, HugeTopKReturnsEveryClass) {
  for (uint32_t top_k : {10u, 11u, 1u << 20, 1u << 31, 0xffffffffu}) {
    v1::ClassifyRequest request;
    request.set_model_name("vit-test");
    request.set_top_k(top_k);
    request.add_images()->set_encoded(ReadFileBytes(FixturesDir() + "/images/pattern_0.png"));
    v1::ClassifyResponse response;
    grpc::Status status = Classify(request, &response);
    if (top_k > (1u << 20)) {  // the default --max_top_k
      EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << top_k;
      EXPECT_NE(status.error_message().find("top_k " + std::to_string(top_k)), std::string::npos)
          << status.error_message();
      continue;
    }
    ASSERT_TRUE(status.ok()) << "top_k " << top_k << ": " << status.error_message();
    ASSERT_EQ(response.classifications_size(), 1);
    EXPECT_EQ(response.classifications(0).classes_size(), 10) << "top_k " << top_k;
  }
}

TEST_F(ClassifyServerTest, AttentionStatsOnRequest) {
  v1::ClassifyRequest request;
  request.set_model_name("vit-test");
  request.set_return_attention_stats(true);
  request.add_images()->set_encoded(ReadFileBytes(FixturesDir() + "/images/pattern_2.png"));
  v1::ClassifyResponse response;
  ASSERT_TRUE(Classify(request, &response).ok());
  const auto& stats = response.classifications(0).attention_stats();
  ASSERT_EQ(stats.layers_size(), 3);
  EXPECT_FALSE(stats.layers(0).elliptical());
  EXPECT_TRUE(stats.layers(1).elliptical());
  EXPECT_EQ(stats.layers(1).heads_size(), 3);
}

TEST_F(ClassifyServerTest, UnknownModelIsNotFound) {
  v1::ClassifyRequest request;
  request.set_model_name("no-such-model");
  request.add_images()->set_encoded(ReadFileBytes(FixturesDir() + "/images/pattern_0.png"));
  v1::ClassifyResponse response;
  grpc::Status status = Classify(request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_NE(status.error_message().find("no-such-model"), std::string::npos);

  CommandResult r = Client({"classify", "--model=no-such-model",
                            FixturesDir() + "/images/pattern_0.png"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("no model named \"no-such-model\""), std::string::npos) << r.err;
}

TEST_F(ClassifyServerTest, BytesThatAreNotAnImageAreInvalid) {
  v1::ClassifyRequest request;
  request.set_model_name("vit-test");
  request.add_images()->set_encoded(ReadFileBytes(FixturesDir() + "/images/pattern_0.png"));
  request.add_images()->set_encoded(ReadFileBytes(FixturesDir() + "/images/not_an_image.png"));
  v1::ClassifyResponse response;
  grpc::Status status = Classify(request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(status.error_message().find("images[1]"), std::string::npos) << status.error_message();
  EXPECT_NE(status.error_message().find("not a PNG or JPEG"), std::string::npos);
}

TEST_F(ClassifyServerTest, EmptyRequestsAreInvalid) {
  v1::ClassifyResponse response;
  grpc::Status status = Classify(v1::ClassifyRequest(), &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(status.error_message().find("model_name is empty"), std::string::npos);

  v1::ClassifyRequest no_images;
  no_images.set_model_name("vit-test");
  status = Classify(no_images, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(status.error_message().find("images is empty"), std::string::npos);

  v1::ClassifyRequest empty_image;
  empty_image.set_model_name("vit-test");
  empty_image.add_images();
  status = Classify(empty_image, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(ClassifyServerTest, TooManyImagesAreRefused) {
  v1::ClassifyRequest request;
  request.set_model_name("vit-test");
  for (int i = 0; i < 9; ++i) {
    request.add_images()->set_encoded(ReadFileBytes(FixturesDir() + "/images/pattern_0.png"));
  }
  v1::ClassifyResponse response;
  grpc::Status status = Classify(request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(status.error_message().find("limit is 8"), std::string::npos);
}

TEST_F(ClassifyServerTest, FailedModelIsListedWithItsReasonAndOthersServe) {
  grpc::ClientContext context;
  v1::ListModelsResponse list;
  ASSERT_TRUE(Stub()->ListModels(&context, {}, &list).ok());
  ASSERT_EQ(list.models_size(), 3);
  EXPECT_EQ(list.models(0).name(), "broken-model");
  EXPECT_EQ(list.models(0).status().state(), v1::MODEL_STATE_FAILED);
  EXPECT_NE(list.models(0).status().reason().find("blocks.3."), std::string::npos);
  EXPECT_EQ(list.models(1).status().state(), v1::MODEL_STATE_READY);

  v1::ClassifyRequest request;
  request.set_model_name("broken-model");
  request.add_images()->set_encoded(ReadFileBytes(FixturesDir() + "/images/pattern_0.png"));
  v1::ClassifyResponse response;
  EXPECT_EQ(Classify(request, &response).error_code(), grpc::StatusCode::UNAVAILABLE);

  auto health = grpc::health::v1::Health::NewStub(server_->channel());
  grpc::ClientContext health_context;
  grpc::health::v1::HealthCheckRequest health_request;
  health_request.set_service("broken-model");
  grpc::health::v1::HealthCheckResponse health_response;
  ASSERT_TRUE(health->Check(&health_context, health_request, &health_response).ok());
  EXPECT_EQ(health_response.status(), grpc::health::v1::HealthCheckResponse::NOT_SERVING);

  CommandResult r = Client({"models"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("vit-test-dot"), std::string::npos);
  EXPECT_NE(r.out.find("failed: "), std::string::npos) << r.out;
}

TEST_F(ClassifyServerTest, ClientPrintsMetadata) {
  CommandResult r = Client({"metadata", "vit-test"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("vit-test: image_classifier, ready"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("elliptical layers [1,2]"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("image size 32 px"), std::string::npos) << r.out;
  CommandResult missing = Client({"metadata", "nope"});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(missing.err.find("NOT_FOUND"), std::string::npos) << missing.err;
}

TEST_F(ClassifyServerTest, MetadataDescribesTheModel) {
  grpc::ClientContext context;
  v1::GetModelMetadataRequest request;
  request.set_model_name("vit-test");
  v1::GetModelMetadataResponse metadata;
  ASSERT_TRUE(Stub()->GetModelMetadata(&context, request, &metadata).ok());
  EXPECT_EQ(metadata.family(), v1::MODEL_FAMILY_IMAGE_CLASSIFIER);
  EXPECT_EQ(metadata.device(), "cpu");
  EXPECT_EQ(metadata.image_size_px(), 32u);
  EXPECT_EQ(metadata.labels_size(), 10);
  EXPECT_EQ(metadata.attention().mode(), v1::ATTENTION_MODE_ELLIPTICAL);
  EXPECT_EQ(metadata.attention().elliptical_layers_size(), 2);
  EXPECT_NEAR(metadata.attention().score_scale(), 0.25, 1e-6);  // 1/sqrt(16)
  EXPECT_GT(metadata.num_parameters(), 0u);
  // The fixture's config.json says float32, and the metadata says so and why.
  EXPECT_EQ(metadata.dtype(), "float32");
  EXPECT_EQ(metadata.dtype_reason(), "float32 as config.json says");
}

TEST_F(ClassifyServerTest, HealthIsServingAndOtherFamiliesRpcsNameTheMismatch) {
  CommandResult r = Client({"health"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "SERVING\n");

  auto health = grpc::health::v1::Health::NewStub(server_->channel());
  grpc::ClientContext context;
  grpc::health::v1::HealthCheckRequest request;
  request.set_service("elliptical.v1.InferenceService");
  grpc::health::v1::HealthCheckResponse response;
  ASSERT_TRUE(health->Check(&context, request, &response).ok());
  EXPECT_EQ(response.status(), grpc::health::v1::HealthCheckResponse::SERVING);

  grpc::ClientContext segment_context;
  v1::SegmentRequest segment_request;
  segment_request.set_model_name("vit-test");
  *segment_request.add_images() = v1::Image();
  segment_request.mutable_images(0)->set_encoded(ReadFileBytes(FixturesDir() + "/images/pattern_0.png"));
  v1::SegmentResponse segment;
  grpc::Status s = Stub()->Segment(&segment_context, segment_request, &segment);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(s.error_message().find("not a segmenter"), std::string::npos) << s.error_message();
}

TEST(ServerLifecycle, SigtermStopsCleanlyAndClientReportsUnreachable) {
  ServerProcess server(testing::ServerBinary(),
                       {"--model_repository=" + FixturesDir() + "/models", "--compute_threads=1"});
  ASSERT_TRUE(server.ok()) << server.log();
  const std::string address = server.address();
  EXPECT_EQ(server.Terminate(), 0) << server.log();
  EXPECT_NE(server.log().find("stopped"), std::string::npos);

  CommandResult r = RunCommand({testing::ClientBinary(), "--server=" + address,
                                "--timeout_s=5", "health"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("cannot reach a serving server"), std::string::npos) << r.err;
}

TEST(ServerLifecycle, MissingRepositoryFailsAtStart) {
  CommandResult r = RunCommand({testing::ServerBinary(), "--model_repository=/nonexistent",
                                "--port=0"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("/nonexistent is not a directory"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace elliptical
