// Which floating-point type a model computes in, and why: the config's (or --dtype's) explicit
// choice, or "auto", which follows the hardware the model runs on.
//
// "auto" picks bfloat16 where bfloat16 is fast and float32 where it is not:
//   - CUDA: bfloat16 (tensor cores; the metric estimate, softmax statistics and logits stay
//     float32 in the model code whatever the dtype);
//   - CPU with AMX-BF16 (Intel Sapphire Rapids and later) that the kernel lets this process use
//     and oneDNN is allowed to use (ONEDNN_MAX_CPU_ISA): bfloat16, measured 2.3-2.5x float32
//     per core for DeiT-Tiny (docs/benchmarks.md);
//   - any other CPU: float32. AVX512-BF16 alone converts and dots bf16 pairs but has no tile
//     unit: LibTorch's bf16 forward measured slower than float32 there;
//   - a language model on any CPU: float32. Its decode steps multiply a handful of rows by
//     unpacked weights, and there bf16 measured slower than float32 even with AMX (kjv-lm: 502
//     against 910 tokens/s for one stream, level at 16; docs/benchmarks.md).
//
// float32 means IEEE float32 on CUDA too: TF32 (10-bit significands in cuDNN convolutions and
// cuBLAS matmuls) only where every loaded CUDA float32 model's config.json says
// "allow_tf32": true (Float32MathPolicy below). bfloat16 and float16 models keep the metric
// estimate, the softmax (LibTorch's attention kernels accumulate in float32), the LayerNorm
// statistics (float32 accumulators in LibTorch's kernels) and the logits (a float32 head,
// PackedLinear::ForwardFloat32) in float32, and cuBLAS may not reduce their split-K partial sums
// in reduced precision. docs/model_formats.md#precision-on-cuda says the same for users.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include <torch/torch.h>

#include "absl/status/statusor.h"
#include "model/config/model_dir.h"

namespace elliptical::model {

// What the precision choice needs to know of the CPU.
struct CpuFeatures {
  bool amx_bf16 = false;      // the CPU reports amx_bf16 and amx_tile
  bool amx_usable = false;    // the kernel granted this process the AMX tile state
  bool avx512_bf16 = false;   // for the reason text only
  // ONEDNN_MAX_CPU_ISA (or its old name DNNL_MAX_CPU_ISA) as set in the environment; empty when
  // unset. oneDNN runs no AMX kernel when it names an ISA below AVX512_CORE_AMX.
  std::string onednn_max_isa;
};

// This machine's, read once (from /proc/cpuinfo, LibTorch's AMX permission request and the
// environment) and kept.
const CpuFeatures& HostCpuFeatures();

// Whether oneDNN may use AMX under `max_isa` (ONEDNN_MAX_CPU_ISA's value; empty: unset).
bool OneDnnAllowsAmx(const std::string& max_isa);

struct PrecisionChoice {
  torch::ScalarType dtype = torch::kFloat32;
  // Short, stable code for a metric label: "configured", "cuda", "cpu_amx_bf16", "cpu_no_amx",
  // "cpu_amx_not_permitted", "onednn_isa_limit", "cpu_language_model".
  std::string source;
  // One sentence for the load log and the model metadata.
  std::string reason;
};

// Resolves a dtype name ("auto", "float32", "bfloat16", "float16") for a model of `family` on
// `device`. `origin` says where an explicit name came from ("config.json", "--dtype") for the
// reason text. float16 on the CPU is refused: its kernels are slow or absent.
absl::StatusOr<PrecisionChoice> ChoosePrecision(const std::string& name, const torch::Device& device,
                                                const CpuFeatures& cpu, const std::string& origin,
                                                ModelFamily family = ModelFamily::kImageClassifier);

// What LibTorch's process-wide CUDA math switches should be, given the models loaded.
//
// LibTorch keeps its TF32 switches (cuDNN convolutions, cuBLAS float32 matmuls) in one global
// context that every thread reads at each kernel launch: they cannot differ per model, and
// flipping them around one model's forward would race with another model's forward on another
// thread. So TF32 is on only while at least one CUDA float32 model is loaded and every loaded
// CUDA float32 model allows it; one model that does not (the default) keeps it off for all.
// bfloat16 and float16 models do not vote: their matmuls are not float32, and their float32
// heads multiply bf16/fp16 values, which TF32 represents exactly.
//
// At construction the policy also sets, once for the process: TF32 off (LibTorch's default lets
// cuDNN convolutions run in TF32), no reduced-precision split-K reductions in cuBLAS for bf16 and
// fp16 GEMMs, and no reduced-precision reductions in the math attention kernel for bf16/fp16.
class Float32MathPolicy {
 public:
  // The process's policy, its defaults applied on first use.
  static Float32MathPolicy& Get();

  // One loaded model's vote; the vote lasts as long as the returned handle.
  class Vote {
   public:
    ~Vote();
    Vote(const Vote&) = delete;
    Vote& operator=(const Vote&) = delete;

   private:
    friend class Float32MathPolicy;
    Vote(Float32MathPolicy* policy, bool allow_tf32) : policy_(policy), allow_tf32_(allow_tf32) {}
    Float32MathPolicy* policy_;
    bool allow_tf32_;
  };

  // For a CUDA float32 model; nullptr for any other (it does not vote).
  std::shared_ptr<const Vote> Join(const torch::Device& device, torch::ScalarType dtype, bool allow_tf32);

  // Whether TF32 is on now (what the policy set; also what LibTorch's context reports).
  bool tf32_enabled() const;
  // Loaded CUDA float32 models, and how many of them allow TF32.
  int float32_models() const;
  int allowing_tf32() const;

  // A policy of its own, for tests; `apply` false leaves LibTorch's context alone.
  explicit Float32MathPolicy(bool apply);

 private:
  void Leave(bool allow_tf32);
  void ApplyLocked();  // sets LibTorch's switches from the counts

  const bool apply_;
  mutable std::mutex mu_;
  int float32_models_ = 0;
  int allowing_ = 0;
  bool tf32_ = false;
};

// The reason text's clause for TF32 (appended to PrecisionChoice::reason): empty on the CPU
// without allow_tf32, so CPU reasons stay as they were.
std::string Tf32Clause(const torch::Device& device, torch::ScalarType dtype, bool allow_tf32);

}  // namespace elliptical::model
