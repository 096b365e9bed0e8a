// The edge checks alone: each refusal names its field and limit, sizes are checked without
// overflow, and the pixel budget of requests in progress is returned by its leases. The core
// checks its plain requests; what only elliptical.v1 can carry wrong (its enums, top_k) is
// checked by its codec.
#include <deque>

#include <gtest/gtest.h>

#include "server/protocols/elliptical_v1/v1_codec.h"
#include "server/core/request_validation.h"
#include "server/input/pixel_budget.h"

namespace elliptical::server {
namespace {

// Raw pixels of the given geometry (their bytes kept alive for the test's duration).
ImageInput Raw(int64_t width, int64_t height, int64_t channels, size_t bytes) {
  static std::deque<std::string> kept;
  kept.emplace_back(bytes, '\0');
  return ImageInput::Pixels(width, height, channels, kept.back());
}

VisionRequest Classify(std::vector<ImageInput> images) {
  VisionRequest r;
  r.model_name = "vit";
  r.images = std::move(images);
  return r;
}

void ExpectRefused(const absl::Status& s, absl::StatusCode code, const std::string& text) {
  EXPECT_EQ(s.code(), code) << s;
  EXPECT_NE(s.message().find(text), std::string::npos) << s;
}

TEST(RequestValidation, RawSidesWhoseProductOverflowsAreRefusedNotWrapped) {
  RequestLimits limits;
  // 4294571377 * 2863575501 * 3 wraps a 64-bit product to a small number.
  auto cost = ValidateVision(Classify({Raw(4294571377u, 2863575501u, 3, 1399)}), limits);
  ExpectRefused(cost.status(), absl::StatusCode::kInvalidArgument, "images[0] is 4294571377x2863575501");
  ExpectRefused(ValidateVision(Classify({Raw(2, 2, 3, 11)}), limits).status(),
                absl::StatusCode::kInvalidArgument, "needs 12 bytes of pixels, got 11");
  ExpectRefused(ValidateVision(Classify({Raw(2, 2, 2, 8)}), limits).status(),
                absl::StatusCode::kInvalidArgument, "2 channels");
  auto ok = ValidateVision(Classify({Raw(2, 3, 3, 18), Raw(4, 4, 1, 16)}), limits);
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->pixels, 6 + 16);
}

// A client's preprocessed tensor (3 x height x width floats).
ImageInput Tensor(int64_t width, int64_t height, model::PixelTensor::Type type, size_t bytes) {
  static std::deque<std::string> kept;
  kept.emplace_back(bytes, '\0');
  return ImageInput::Tensor(width, height, type, kept.back());
}

TEST(RequestValidation, TensorsAreBoundedAndChargedLikeImages) {
  RequestLimits limits;
  limits.max_image_pixels = 100;
  limits.max_request_pixels = 150;
  using Type = model::PixelTensor::Type;
  auto ok = ValidateVision(Classify({Tensor(10, 10, Type::kFloat32, 1200), Raw(5, 5, 3, 75)}), limits);
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->pixels, 100 + 25);
  EXPECT_TRUE(ValidateVision(Classify({Tensor(10, 10, Type::kBFloat16, 600)}), limits).ok());
  ExpectRefused(ValidateVision(Classify({Tensor(10, 10, Type::kFloat16, 1200)}), limits).status(),
                absl::StatusCode::kInvalidArgument, "images[0] is a 3x10x10 tensor and needs 600 bytes, got 1200");
  ExpectRefused(ValidateVision(Classify({Tensor(11, 10, Type::kFloat32, 1320)}), limits).status(),
                absl::StatusCode::kInvalidArgument, "the limit is 100 pixels per image");
  ExpectRefused(ValidateVision(Classify({Tensor(10, 10, Type::kFloat32, 1200), Tensor(10, 10, Type::kFloat32, 1200)}),
                               limits).status(),
                absl::StatusCode::kResourceExhausted, "200 pixels in all; the limit is 150");
  // Sides whose product would wrap are refused before any product is taken.
  ExpectRefused(ValidateVision(Classify({Tensor(4294571377u, 2863575501u, Type::kFloat32, 12)}), RequestLimits{})
                    .status(),
                absl::StatusCode::kInvalidArgument, "images[0] is 4294571377x2863575501");
}

TEST(RequestValidation, ImagesOfOneRequestShareItsPixelBudget) {
  RequestLimits limits;
  limits.max_image_pixels = 100;
  limits.max_request_pixels = 150;
  ExpectRefused(ValidateVision(Classify({Raw(11, 10, 1, 110)}), limits).status(),
                absl::StatusCode::kInvalidArgument, "the limit is 100 pixels per image");
  ExpectRefused(ValidateVision(Classify({Raw(10, 10, 1, 100), Raw(10, 6, 1, 60)}), limits).status(),
                absl::StatusCode::kResourceExhausted, "160 pixels in all; the limit is 150");
  EXPECT_TRUE(ValidateVision(Classify({Raw(10, 10, 1, 100), Raw(10, 5, 1, 50)}), limits).ok());
  ExpectRefused(ValidateVision(Classify({}), limits).status(), absl::StatusCode::kInvalidArgument,
                "images is empty");
}

TEST(RequestValidation, TopKAndPriorityAreBoundedByTheV1Codec) {
  RequestLimits limits;
  v1::ClassifyRequest r;
  r.set_model_name("vit");
  r.add_images()->set_encoded("not checked here");
  r.set_top_k(limits.max_top_k);
  EXPECT_TRUE(ToVisionRequest(r, limits).ok());
  r.set_top_k(4294967295u);
  ExpectRefused(ToVisionRequest(r, limits).status(), absl::StatusCode::kInvalidArgument, "top_k 4294967295");
  r.set_top_k(1);
  r.set_priority(static_cast<v1::Priority>(77));
  ExpectRefused(ToVisionRequest(r, limits).status(), absl::StatusCode::kInvalidArgument, "priority 77");
  r.set_priority(v1::PRIORITY_LOW);
  auto mapped = ToVisionRequest(r, limits);
  ASSERT_TRUE(mapped.ok());
  EXPECT_EQ(mapped->priority, Priority::kLow);
  ASSERT_EQ(mapped->images.size(), 1u);
  EXPECT_EQ(mapped->images[0].encoded, "not checked here");
  EXPECT_EQ(mapped->images[0].encoded.data(), r.images(0).encoded().data()) << "a view, not a copy";

  VisionRequest core = Classify({Raw(1, 1, 3, 3)});
  core.model_name = std::string(300, 'm');
  auto s = ValidateVision(core, limits).status();
  ExpectRefused(s, absl::StatusCode::kInvalidArgument, "model_name is 300 bytes");
  EXPECT_EQ(s.message().find("mmmm"), std::string::npos) << "the name is not echoed";
  ExpectRefused(ValidateVision(Classify({ImageInput()}), limits).status(), absl::StatusCode::kInvalidArgument,
                "images[0] sets neither encoded bytes nor raw pixels");
}

TEST(RequestValidation, GenerateBoundsPromptStopsAndSampling) {
  RequestLimits limits;
  GenerateRequest r;
  r.model_name = "lm";
  r.prompt = "hello";
  EXPECT_TRUE(ValidateGenerate(r, limits).ok());
  for (int i = 0; i < limits.max_stop_sequences; ++i) r.stop.push_back("s");
  EXPECT_TRUE(ValidateGenerate(r, limits).ok());
  r.stop.push_back("one too many");
  ExpectRefused(ValidateGenerate(r, limits), absl::StatusCode::kInvalidArgument, "stop holds 17 sequences");
  r.stop = {std::string(limits.max_stop_sequence_bytes + 1, 'x')};
  ExpectRefused(ValidateGenerate(r, limits), absl::StatusCode::kInvalidArgument, "stop[0] is 257 bytes");
  r.stop = {""};
  ExpectRefused(ValidateGenerate(r, limits), absl::StatusCode::kInvalidArgument, "stop[0] is empty");
  r.stop.clear();
  r.prompt = std::string(limits.max_prompt_bytes + 1, 'p');
  ExpectRefused(ValidateGenerate(r, limits), absl::StatusCode::kInvalidArgument, "prompt is 262145 bytes");
  r.prompt = "hello";
  r.sampling.top_p = std::nanf("");
  ExpectRefused(ValidateGenerate(r, limits), absl::StatusCode::kInvalidArgument, "top_p");
  r.sampling.top_p = 0.5f;
  r.sampling.temperature = std::numeric_limits<float>::infinity();
  ExpectRefused(ValidateGenerate(r, limits), absl::StatusCode::kInvalidArgument, "temperature");
  r.sampling.temperature = 1e-40f;  // underflows to greedy in the sampler: valid
  EXPECT_TRUE(ValidateGenerate(r, limits).ok());
  r.sampling.top_k = static_cast<int>(limits.max_top_k) + 1;
  ExpectRefused(ValidateGenerate(r, limits), absl::StatusCode::kInvalidArgument, "top_k");
  r.sampling.top_k = 0;
  r.max_new_tokens = int64_t{1} << 31;
  ExpectRefused(ValidateGenerate(r, limits), absl::StatusCode::kInvalidArgument, "max_new_tokens");

  // The v1 codec checks top_k before it narrows the client's uint32 to the core's int.
  v1::GenerateRequest v1r;
  v1r.set_model_name("lm");
  v1r.set_prompt("hello");
  v1r.set_top_k(4294967295u);
  ExpectRefused(ToGenerateRequest(v1r, limits).status(), absl::StatusCode::kInvalidArgument, "top_k 4294967295");
}

TEST(PixelBudget, LeasesShareTheLimitAndReturnTheirPixels) {
  PixelBudget budget(100);
  auto a = budget.Acquire(60);
  ASSERT_TRUE(a.ok());
  auto b = budget.Acquire(41);
  ExpectRefused(b.status(), absl::StatusCode::kResourceExhausted, "decoding 60 pixels for other requests");
  {
    auto c = budget.Acquire(40);
    ASSERT_TRUE(c.ok());
    EXPECT_EQ(budget.in_use(), 100);
  }
  EXPECT_EQ(budget.in_use(), 60) << "a lease returns its pixels when it goes";
  PixelBudget::Lease moved = *std::move(a);
  moved.Release();
  moved.Release();
  EXPECT_EQ(budget.in_use(), 0) << "released once";
  EXPECT_TRUE(budget.Acquire(100).ok());
}

}  // namespace
}  // namespace elliptical::server
