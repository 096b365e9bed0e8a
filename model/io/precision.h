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
#pragma once

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

}  // namespace elliptical::model
