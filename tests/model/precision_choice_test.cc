// What dtype "auto" picks for each kind of machine, and why; explicit names pass through. The
// choice is a pure function of the CPU's features, so every machine is tested on any machine.
#include "model/io/precision.h"

#include <gtest/gtest.h>

namespace elliptical::model {
namespace {

CpuFeatures Amx() {
  CpuFeatures f;
  f.amx_bf16 = f.amx_usable = f.avx512_bf16 = true;
  return f;
}

PrecisionChoice Auto(const CpuFeatures& cpu, torch::Device device = torch::kCPU) {
  auto c = ChoosePrecision("auto", device, cpu, "config.json");
  EXPECT_TRUE(c.ok()) << c.status();
  return *c;
}

TEST(PrecisionChoice, AutoIsBfloat16OnACpuWithAmx) {
  PrecisionChoice c = Auto(Amx());
  EXPECT_EQ(c.dtype, torch::kBFloat16);
  EXPECT_EQ(c.source, "cpu_amx_bf16");
  EXPECT_NE(c.reason.find("AMX-BF16"), std::string::npos) << c.reason;
}

TEST(PrecisionChoice, AutoIsFloat32WithoutAmx) {
  CpuFeatures avx512_bf16_only;
  avx512_bf16_only.avx512_bf16 = true;
  PrecisionChoice c = Auto(avx512_bf16_only);
  EXPECT_EQ(c.dtype, torch::kFloat32);
  EXPECT_EQ(c.source, "cpu_no_amx");
  EXPECT_NE(c.reason.find("slower"), std::string::npos) << c.reason;
  EXPECT_EQ(Auto(CpuFeatures{}).dtype, torch::kFloat32);  // AMD or an older Intel
}

TEST(PrecisionChoice, AutoIsFloat32WhenTheKernelWithholdsAmx) {
  CpuFeatures f = Amx();
  f.amx_usable = false;
  EXPECT_EQ(Auto(f).dtype, torch::kFloat32);
  EXPECT_EQ(Auto(f).source, "cpu_amx_not_permitted");
}

TEST(PrecisionChoice, AutoFollowsOneDnnIsaLimit) {
  CpuFeatures f = Amx();
  for (const char* below : {"AVX512_CORE_BF16", "avx2", "AVX512_CORE"}) {
    f.onednn_max_isa = below;
    EXPECT_EQ(Auto(f).dtype, torch::kFloat32) << below;
    EXPECT_EQ(Auto(f).source, "onednn_isa_limit") << below;
    EXPECT_NE(Auto(f).reason.find(below), std::string::npos);
  }
  for (const char* amx : {"AVX512_CORE_AMX", "ALL", "avx10_1_512_amx_fp16"}) {
    f.onednn_max_isa = amx;
    EXPECT_EQ(Auto(f).dtype, torch::kBFloat16) << amx;
  }
}

TEST(PrecisionChoice, AutoKeepsALanguageModelInFloat32OnTheCpu) {
  auto c = ChoosePrecision("auto", torch::kCPU, Amx(), "config.json", ModelFamily::kLanguageModel);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->dtype, torch::kFloat32);
  EXPECT_EQ(c->source, "cpu_language_model");
  auto seg = ChoosePrecision("auto", torch::kCPU, Amx(), "config.json", ModelFamily::kSegmenter);
  EXPECT_EQ(seg->dtype, torch::kBFloat16);
  auto cuda = ChoosePrecision("auto", torch::Device(torch::kCUDA, 0), Amx(), "config.json",
                              ModelFamily::kLanguageModel);
  EXPECT_EQ(cuda->dtype, torch::kBFloat16);
  auto forced = ChoosePrecision("bfloat16", torch::kCPU, Amx(), "--dtype", ModelFamily::kLanguageModel);
  EXPECT_EQ(forced->dtype, torch::kBFloat16);
}

TEST(PrecisionChoice, AutoIsBfloat16OnCuda) {
  PrecisionChoice c = Auto(CpuFeatures{}, torch::Device(torch::kCUDA, 0));
  EXPECT_EQ(c.dtype, torch::kBFloat16);
  EXPECT_EQ(c.source, "cuda");
}

TEST(PrecisionChoice, ExplicitNamesAreKeptWithTheirOrigin) {
  auto f32 = ChoosePrecision("float32", torch::kCPU, Amx(), "--dtype");
  ASSERT_TRUE(f32.ok());
  EXPECT_EQ(f32->dtype, torch::kFloat32);
  EXPECT_EQ(f32->source, "configured");
  EXPECT_EQ(f32->reason, "float32 as --dtype says");
  auto bf16 = ChoosePrecision("bfloat16", torch::kCPU, CpuFeatures{}, "config.json");
  ASSERT_TRUE(bf16.ok());
  EXPECT_EQ(bf16->dtype, torch::kBFloat16);  // forced: honoured even where it is slow
  auto f16 = ChoosePrecision("float16", torch::Device(torch::kCUDA, 0), CpuFeatures{}, "config.json");
  ASSERT_TRUE(f16.ok());
  EXPECT_EQ(f16->dtype, torch::kHalf);
}

TEST(PrecisionChoice, BadNamesAreRefusedNamingTheChoices) {
  auto f16 = ChoosePrecision("float16", torch::kCPU, Amx(), "config.json");
  EXPECT_EQ(f16.status().code(), absl::StatusCode::kInvalidArgument);
  auto bad = ChoosePrecision("fp8", torch::kCPU, Amx(), "config.json");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("auto, float32, float16, bfloat16"), std::string::npos);
}

TEST(PrecisionChoice, HostFeaturesAreConsistent) {
  const CpuFeatures& host = HostCpuFeatures();
  EXPECT_TRUE(!host.amx_usable || host.amx_bf16);  // usable implies present
}

}  // namespace
}  // namespace elliptical::model
