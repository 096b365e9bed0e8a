// A linear layer with torch::nn::Linear's parameters ("weight" (out, in), "bias" (out)) that,
// once packed, multiplies with a copy of its weight kept in oneDNN's blocked layout.
//
// Why: a bfloat16 forward on the CPU runs its matmuls on oneDNN (AMX tiles where present), and
// torch::nn::Linear hands oneDNN the plain (out, in) weight, which oneDNN reorders into its
// blocked layout again on every call. For the small row counts of a ViT (197 tokens an image)
// that reorder is a large share of the matmul and it does not parallelise: DeiT-Tiny bf16 ran
// 1.4x faster on one thread and scaled better to two with packed weights (docs/benchmarks.md).
// Packing is what OpenVINO and torch.compile's freezing do. Both paths accumulate in float32 in
// the same oneDNN kernel family; the blocking may differ, so outputs agree to within one bf16
// rounding (bit-identical where oneDNN picks the same blocking, as for the row count packed for).
//
// Pack() does nothing where it would not help or cannot run: a float32 model (MKL's sgemm
// serves it), a CUDA model, or a LibTorch without the oneDNN ops. forward() then is
// torch::nn::functional::linear.
#pragma once

#include <torch/torch.h>

namespace elliptical::model {

// A module that can keep a packed copy of its weights for bf16 CPU forwards (PackedLinear, a
// ViT's patch embedding); PackLinears finds every one in a network.
class CpuPackable {
 public:
  virtual ~CpuPackable() = default;
  // Packs for inputs of about `rows` rows; returns whether it packed.
  virtual bool Pack(int64_t rows) = 0;
};

class PackedLinearImpl : public torch::nn::Module, public CpuPackable {
 public:
  PackedLinearImpl(int64_t in_features, int64_t out_features, bool bias = true);

  // x (..., in) -> (..., out); with `gelu`, the exact (erf) GELU of that, fused into the matmul
  // when packed.
  torch::Tensor forward(const torch::Tensor& x, bool gelu = false);

  // x (..., in) -> (..., out) in float32 whatever the layer's dtype: for logits (Float32Linear).
  torch::Tensor ForwardFloat32(const torch::Tensor& x);

  // Packs the current weight for inputs of about `rows` rows (oneDNN picks its blocking for
  // that size; other sizes run the same kernel family). Call after the weights are loaded and
  // placed; returns whether it packed.
  bool Pack(int64_t rows) override;
  bool packed() const { return packed_.defined(); }

  torch::Tensor weight, bias;

 private:
  torch::Tensor packed_;
};
TORCH_MODULE(PackedLinear);

// F::linear(x, weight, bias) with a float32 result. A float32 x and weight take F::linear as they
// are (the same bits as before). Otherwise the operands are widened to float32 first: bf16 and
// fp16 values are exact in float32 (and in TF32), and their products are exact in float32, so
// this is the bf16/fp16 matmul with float32 accumulation that the reduced-precision kernels do,
// without rounding its result to 8 (or 11) significand bits. Used for every family's logits:
// a bf16 logit of 20 is only known to 0.06, which moves its probability by 6%.
torch::Tensor Float32Linear(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias);

// Packs every CpuPackable in `module` (Pack(rows) each); returns how many were packed.
int PackLinears(torch::nn::Module& module, int64_t rows);

}  // namespace elliptical::model
