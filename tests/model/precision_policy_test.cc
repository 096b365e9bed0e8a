// The precision policy that needs no GPU to check: the TF32 vote (model/io/precision.h), the
// process-wide switches it sets at start, the allow_tf32 config field and its reason text.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "model/config/classifier_config.h"
#include "model/config/config_fields.h"
#include "model/config/lm_config.h"
#include "model/config/safetensors.h"
#include "model/io/precision.h"
#include "model/io/weights.h"
#include "model/nets/decoder_lm.h"
#include "model/nets/vit.h"
#include "tests/support/fixtures.h"

namespace elliptical::model {
namespace {

const torch::Device kCuda(torch::kCUDA, 0);

TEST(Float32MathPolicy, Tf32OnlyWhileEveryCudaFloat32ModelAllowsIt) {
  Float32MathPolicy policy(/*apply=*/false);
  EXPECT_FALSE(policy.tf32_enabled());
  // Models that are not float32 on CUDA do not vote.
  EXPECT_EQ(policy.Join(torch::kCPU, torch::kFloat32, true), nullptr);
  EXPECT_EQ(policy.Join(kCuda, torch::kBFloat16, true), nullptr);
  EXPECT_EQ(policy.Join(kCuda, torch::kFloat16, true), nullptr);
  EXPECT_FALSE(policy.tf32_enabled());

  auto a = policy.Join(kCuda, torch::kFloat32, /*allow_tf32=*/true);
  ASSERT_NE(a, nullptr);
  EXPECT_TRUE(policy.tf32_enabled());
  {
    auto strict = policy.Join(kCuda, torch::kFloat32, /*allow_tf32=*/false);
    EXPECT_FALSE(policy.tf32_enabled()) << "one float32 model without allow_tf32 keeps it off for all";
    auto b = policy.Join(kCuda, torch::kFloat32, true);
    EXPECT_FALSE(policy.tf32_enabled());
    EXPECT_EQ(policy.float32_models(), 3);
    EXPECT_EQ(policy.allowing_tf32(), 2);
  }
  EXPECT_TRUE(policy.tf32_enabled()) << "the strict model's unload turns it back on";
  a.reset();
  EXPECT_FALSE(policy.tf32_enabled()) << "no CUDA float32 model: off";
  EXPECT_EQ(policy.float32_models(), 0);
}

TEST(Float32MathPolicy, ProcessStartsWithIeeeFloat32AndFloat32Reductions) {
  // LibTorch's own default lets cuDNN convolutions run in TF32; the policy turns that off. These
  // are plain switches in LibTorch's global context, readable on a machine without CUDA.
  Float32MathPolicy& policy = Float32MathPolicy::Get();
  EXPECT_FALSE(policy.tf32_enabled());
  at::Context& ctx = at::globalContext();
  EXPECT_FALSE(ctx.allowTF32CuDNN());
  EXPECT_FALSE(ctx.allowTF32CuBLAS());
  EXPECT_NE(ctx.allowBF16ReductionCuBLAS(), at::CuBLASReductionOption::AllowReducedPrecisionWithSplitK);
  EXPECT_NE(ctx.allowFP16ReductionCuBLAS(), at::CuBLASReductionOption::AllowReducedPrecisionWithSplitK);
  EXPECT_FALSE(ctx.allowFP16BF16ReductionMathSDP());
  {
    auto vote = policy.Join(kCuda, torch::kFloat32, true);
    EXPECT_TRUE(ctx.allowTF32CuDNN());
    EXPECT_TRUE(ctx.allowTF32CuBLAS());
  }
  EXPECT_FALSE(ctx.allowTF32CuDNN());
  EXPECT_FALSE(ctx.allowTF32CuBLAS());
}

TEST(Float32MathPolicy, ReasonSaysWhatTf32Does) {
  EXPECT_EQ(Tf32Clause(torch::kCPU, torch::kFloat32, false), "") << "CPU reasons stay as they were";
  EXPECT_NE(Tf32Clause(torch::kCPU, torch::kFloat32, true).find("no effect on the CPU"), std::string::npos);
  EXPECT_NE(Tf32Clause(kCuda, torch::kFloat32, false).find("TF32 off"), std::string::npos);
  EXPECT_NE(Tf32Clause(kCuda, torch::kFloat32, true).find("TF32 allowed"), std::string::npos);
  EXPECT_NE(Tf32Clause(kCuda, torch::kBFloat16, true).find("no effect"), std::string::npos);
}

absl::StatusOr<RuntimeFields> Parse(const char* json) {
  return ParseRuntimeFields(ModelDirectory{"m", ModelFamily::kImageClassifier, nlohmann::json::parse(json)});
}

TEST(AllowTf32Config, DefaultsOffAndReadsABoolean) {
  auto plain = Parse(R"({"family": "image_classifier"})");
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_FALSE(plain->allow_tf32);
  for (const char* dtype : {"auto", "float32"}) {
    auto f = Parse((std::string(R"({"allow_tf32": true, "dtype": ")") + dtype + "\"}").c_str());
    ASSERT_TRUE(f.ok()) << dtype << ": " << f.status();
    EXPECT_TRUE(f->allow_tf32);
  }
  auto text = Parse(R"({"allow_tf32": "yes"})");
  ASSERT_FALSE(text.ok());
  EXPECT_NE(text.status().message().find("allow_tf32 must be true or false"), std::string::npos);
}

TEST(AllowTf32Config, RefusedByNameWithAReducedPrecisionDtype) {
  for (const char* dtype : {"bfloat16", "float16"}) {
    auto f = Parse((std::string(R"({"allow_tf32": true, "dtype": ")") + dtype + "\"}").c_str());
    ASSERT_FALSE(f.ok()) << dtype;
    EXPECT_EQ(f.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(f.status().message().find("allow_tf32 is for float32 models"), std::string::npos) << f.status();
    EXPECT_NE(f.status().message().find("m/config.json"), std::string::npos) << f.status();
  }
  auto off = Parse(R"({"allow_tf32": false, "dtype": "bfloat16"})");
  EXPECT_TRUE(off.ok()) << off.status();
}

template <typename Net>
void LoadInto(Net& net, const std::string& weights_path, torch::ScalarType dtype) {
  auto weights = SafetensorsFile::Open(weights_path);
  ASSERT_TRUE(weights.ok()) << weights.status();
  net->to(dtype);
  net->eval();
  ASSERT_TRUE(LoadWeights(*net, *weights).ok());
}

// bf16 models compute their logits in float32 (model/nets/packed_linear.h, Float32Linear).
TEST(ReducedPrecision, LogitsAreFloat32) {
  c10::InferenceMode inference;
  auto c = ReadClassifierConfig(elliptical::testing::FixturesDir() + "/models/vit-test");
  ASSERT_TRUE(c.ok()) << c.status();
  VisionTransformer vit(c->vit, c->attention, c->num_classes);
  LoadInto(vit, c->runtime.weights_path, torch::kBFloat16);
  torch::Tensor images = torch::randn({2, 3, c->vit.image_size, c->vit.image_size}).to(torch::kBFloat16);
  EXPECT_EQ(vit->forward(images).scalar_type(), torch::kFloat32);

  auto lm = ReadLmConfig(elliptical::testing::ModelFixturesDir() + "/lm/models/lm-pre");
  ASSERT_TRUE(lm.ok()) << lm.status();
  DecoderLm net(*lm);
  LoadInto(net, lm->runtime.weights_path, torch::kBFloat16);
  torch::Tensor tokens = torch::tensor({1, 2, 3, 4}, torch::kInt64).view({1, 4});
  EXPECT_EQ(net->forward(tokens, torch::tensor({4}, torch::kInt64), ScaleMode::kPrefix).scalar_type(),
            torch::kFloat32);
}

}  // namespace
}  // namespace elliptical::model
