// The edge checks alone: each refusal names its field and limit, sizes are checked without
// overflow, and the pixel budget of requests in progress is returned by its leases.
#include <gtest/gtest.h>

#include "server/calls/request_validation.h"
#include "server/input/pixel_budget.h"

namespace elliptical::server {
namespace {

v1::Image Raw(uint32_t width, uint32_t height, uint32_t channels, size_t bytes) {
  v1::Image image;
  v1::RawImage* raw = image.mutable_raw();
  raw->set_width_px(width);
  raw->set_height_px(height);
  raw->set_channels(channels);
  raw->set_pixels(std::string(bytes, '\0'));
  return image;
}

v1::ClassifyRequest Classify(std::vector<v1::Image> images) {
  v1::ClassifyRequest r;
  r.set_model_name("vit");
  for (auto& i : images) *r.add_images() = std::move(i);
  return r;
}

void ExpectRefused(const absl::Status& s, absl::StatusCode code, const std::string& text) {
  EXPECT_EQ(s.code(), code) << s;
  EXPECT_NE(s.message().find(text), std::string::npos) << s;
}

TEST(RequestValidation, RawSidesWhoseProductOverflowsAreRefusedNotWrapped) {
  RequestLimits limits;
  // 4294571377 * 2863575501 * 3 wraps a 64-bit product to a small number.
  auto cost = ValidateClassify(Classify({Raw(4294571377u, 2863575501u, 3, 1399)}), limits);
  ExpectRefused(cost.status(), absl::StatusCode::kInvalidArgument, "images[0] is 4294571377x2863575501");
  ExpectRefused(ValidateClassify(Classify({Raw(2, 2, 3, 11)}), limits).status(),
                absl::StatusCode::kInvalidArgument, "needs 12 bytes of pixels, got 11");
  ExpectRefused(ValidateClassify(Classify({Raw(2, 2, 2, 8)}), limits).status(),
                absl::StatusCode::kInvalidArgument, "2 channels");
  auto ok = ValidateClassify(Classify({Raw(2, 3, 3, 18), Raw(4, 4, 1, 16)}), limits);
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->pixels, 6 + 16);
}

TEST(RequestValidation, ImagesOfOneRequestShareItsPixelBudget) {
  RequestLimits limits;
  limits.max_image_pixels = 100;
  limits.max_request_pixels = 150;
  ExpectRefused(ValidateClassify(Classify({Raw(11, 10, 1, 110)}), limits).status(),
                absl::StatusCode::kInvalidArgument, "the limit is 100 pixels per image");
  ExpectRefused(ValidateClassify(Classify({Raw(10, 10, 1, 100), Raw(10, 6, 1, 60)}), limits).status(),
                absl::StatusCode::kResourceExhausted, "160 pixels in all; the limit is 150");
  EXPECT_TRUE(ValidateClassify(Classify({Raw(10, 10, 1, 100), Raw(10, 5, 1, 50)}), limits).ok());
  ExpectRefused(ValidateClassify(Classify({}), limits).status(), absl::StatusCode::kInvalidArgument,
                "images is empty");
}

TEST(RequestValidation, TopKAndPriorityAreBounded) {
  RequestLimits limits;
  v1::ClassifyRequest r = Classify({Raw(1, 1, 3, 3)});
  r.set_top_k(limits.max_top_k);
  EXPECT_TRUE(ValidateClassify(r, limits).ok());
  r.set_top_k(4294967295u);
  ExpectRefused(ValidateClassify(r, limits).status(), absl::StatusCode::kInvalidArgument, "top_k 4294967295");
  r.set_top_k(1);
  r.set_priority(static_cast<v1::Priority>(77));
  ExpectRefused(ValidateClassify(r, limits).status(), absl::StatusCode::kInvalidArgument, "priority 77");
  r.set_priority(v1::PRIORITY_LOW);
  r.set_model_name(std::string(300, 'm'));
  auto s = ValidateClassify(r, limits).status();
  ExpectRefused(s, absl::StatusCode::kInvalidArgument, "model_name is 300 bytes");
  EXPECT_EQ(s.message().find("mmmm"), std::string::npos) << "the name is not echoed";
}

TEST(RequestValidation, GenerateBoundsPromptStopsAndSampling) {
  RequestLimits limits;
  v1::GenerateRequest r;
  r.set_model_name("lm");
  r.set_prompt("hello");
  EXPECT_TRUE(ValidateGenerate(r, limits).ok());
  for (int i = 0; i < limits.max_stop_sequences; ++i) r.add_stop("s");
  EXPECT_TRUE(ValidateGenerate(r, limits).ok());
  r.add_stop("one too many");
  ExpectRefused(ValidateGenerate(r, limits), absl::StatusCode::kInvalidArgument, "stop holds 17 sequences");
  r.clear_stop();
  r.add_stop(std::string(limits.max_stop_sequence_bytes + 1, 'x'));
  ExpectRefused(ValidateGenerate(r, limits), absl::StatusCode::kInvalidArgument, "stop[0] is 257 bytes");
  r.clear_stop();
  r.add_stop("");
  ExpectRefused(ValidateGenerate(r, limits), absl::StatusCode::kInvalidArgument, "stop[0] is empty");
  r.clear_stop();
  r.set_prompt(std::string(limits.max_prompt_bytes + 1, 'p'));
  ExpectRefused(ValidateGenerate(r, limits), absl::StatusCode::kInvalidArgument, "prompt is 262145 bytes");
  r.set_prompt("hello");
  r.set_top_p(std::nanf(""));
  ExpectRefused(ValidateGenerate(r, limits), absl::StatusCode::kInvalidArgument, "top_p");
  r.set_top_p(0.5f);
  r.set_temperature(std::numeric_limits<float>::infinity());
  ExpectRefused(ValidateGenerate(r, limits), absl::StatusCode::kInvalidArgument, "temperature");
  r.set_temperature(1e-40f);  // underflows to greedy in the sampler: valid
  EXPECT_TRUE(ValidateGenerate(r, limits).ok());
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
