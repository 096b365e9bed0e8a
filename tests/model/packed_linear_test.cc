// PackedLinear: a drop-in torch::nn::Linear (same parameter names, same results unpacked), whose
// packed bf16 path agrees with the unpacked bf16 one to within one bf16 rounding of the output
// (both accumulate in float32; the blocking oneDNN picks for the packed layout may sum in another
// order, and float32 values that straddle a bf16 rounding boundary then round apart), and whose
// fused GELU is GELU to within bf16's rounding.
#include "model/nets/packed_linear.h"

#include <gtest/gtest.h>

#include "tests/support/bfloat16_tolerance.h"

namespace elliptical::model {
namespace {

namespace F = torch::nn::functional;

TEST(PackedLinear, HasLinearsParametersAndResults) {
  torch::manual_seed(0);
  PackedLinear layer(24, 40);
  std::vector<std::string> names;
  for (const auto& p : layer->named_parameters()) names.push_back(p.key());
  EXPECT_EQ(names, (std::vector<std::string>{"weight", "bias"}));
  EXPECT_EQ(layer->weight.sizes(), (std::vector<int64_t>{40, 24}));
  torch::Tensor x = torch::randn({3, 5, 24});
  EXPECT_TRUE(torch::equal(layer->forward(x), F::linear(x, layer->weight, layer->bias)));
  EXPECT_FALSE(layer->Pack(5)) << "float32 stays with MKL's sgemm";
  PackedLinear no_bias(24, 8, /*bias=*/false);
  EXPECT_FALSE(no_bias->bias.defined());
  EXPECT_EQ(no_bias->named_parameters().size(), 1u);
}

TEST(PackedLinear, PackedBfloat16AgreesWithUnpackedWithinOneRounding) {
  torch::manual_seed(1);
  PackedLinear layer(192, 576);
  layer->to(torch::kBFloat16);
  torch::NoGradGuard no_grad;
  const double u = elliptical::testing::kBfloat16UnitRoundoff;
  // Within one bf16 rounding of the larger magnitude (float32's own reordering error, about
  // 1e-6 here, is far below it).
  auto expect_close = [u](const torch::Tensor& got, const torch::Tensor& want, const char* what) {
    torch::Tensor a = got.to(torch::kFloat32), b = want.to(torch::kFloat32);
    torch::Tensor scale = torch::maximum(a.abs(), b.abs()).clamp_min(1.0);
    EXPECT_LE(((a - b).abs() / scale).max().item<double>(), 2 * u) << what;
  };
  torch::Tensor x = torch::randn({2, 197, 192}).to(torch::kBFloat16);
  torch::Tensor plain = layer->forward(x);
  torch::Tensor plain_gelu = F::gelu(plain.to(torch::kFloat32));
  if (!layer->Pack(197)) GTEST_SKIP() << "this LibTorch or CPU has no oneDNN bf16 linear";
  ASSERT_TRUE(layer->packed());
  expect_close(layer->forward(x), plain, "two images' rows");
  torch::Tensor one = x.select(0, 0);
  expect_close(layer->forward(one), F::linear(one, layer->weight, layer->bias), "the rows packed for");
  torch::Tensor few = torch::randn({3, 192}).to(torch::kBFloat16);
  expect_close(layer->forward(few), F::linear(few, layer->weight, layer->bias), "three rows");
  torch::Tensor strided = x.transpose(0, 1);
  expect_close(layer->forward(strided), F::linear(strided, layer->weight, layer->bias), "a strided input");
  // Fused GELU: computed from the float32 accumulator and rounded once, against GELU of the
  // bf16-rounded product: one rounding of the output plus GELU's slope (at most 1.13) times one of
  // the input, so within 3u of the larger magnitude.
  torch::Tensor fused = layer->forward(x, /*gelu=*/true).to(torch::kFloat32);
  torch::Tensor scale = plain.to(torch::kFloat32).abs().clamp_min(1.0);
  EXPECT_LE(((fused - plain_gelu).abs() / scale).max().item<double>(), 3 * u);
}

}  // namespace
}  // namespace elliptical::model
