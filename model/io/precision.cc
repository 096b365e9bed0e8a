#include "model/io/precision.h"

#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>

#include <ATen/Context.h>
#include <ATen/cpu/Utils.h>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace elliptical::model {
namespace {

std::set<std::string> CpuinfoFlags() {
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("flags", 0) != 0) continue;
    const size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::istringstream words(line.substr(colon + 1));
    std::set<std::string> flags;
    for (std::string w; words >> w;) flags.insert(w);
    return flags;  // every core reports the same flags: the first line is enough
  }
  return {};
}

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::string(v) : std::string();
}

CpuFeatures ReadCpuFeatures() {
  CpuFeatures f;
  const std::set<std::string> flags = CpuinfoFlags();
  f.amx_bf16 = flags.count("amx_bf16") > 0 && flags.count("amx_tile") > 0;
  f.avx512_bf16 = flags.count("avx512_bf16") > 0;
  // Linux hands out the AMX tile state only on request (arch_prctl ARCH_REQ_XCOMP_PERM); a
  // kernel before 5.16, or a seccomp policy, refuses it, and then oneDNN falls back to slower
  // AVX-512 bf16 kernels. LibTorch makes the request and says whether it was granted.
  f.amx_usable = f.amx_bf16 && at::cpu::init_amx();
  f.onednn_max_isa = Env("ONEDNN_MAX_CPU_ISA");
  if (f.onednn_max_isa.empty()) f.onednn_max_isa = Env("DNNL_MAX_CPU_ISA");
  return f;
}

}  // namespace

const CpuFeatures& HostCpuFeatures() {
  static const CpuFeatures features = ReadCpuFeatures();
  return features;
}

bool OneDnnAllowsAmx(const std::string& max_isa) {
  const std::string isa = absl::AsciiStrToUpper(max_isa);
  // oneDNN's names at or above the AMX level; anything else (AVX2, AVX512_CORE_BF16, ...) caps
  // it below.
  return isa.empty() || isa == "ALL" || isa.find("AMX") != std::string::npos;
}

absl::StatusOr<PrecisionChoice> ChoosePrecision(const std::string& name, const torch::Device& device,
                                                const CpuFeatures& cpu, const std::string& origin,
                                                ModelFamily family) {
  PrecisionChoice c;
  if (name == "auto" || name.empty()) {
    if (device.is_cuda()) {
      c.dtype = torch::kBFloat16;
      c.source = "cuda";
      c.reason = "auto: bfloat16 on a CUDA device";
    } else if (family == ModelFamily::kLanguageModel) {
      c.dtype = torch::kFloat32;
      c.source = "cpu_language_model";
      c.reason = "auto: float32, a language model's decode steps run slower in bfloat16 on the CPU";
    } else if (!cpu.amx_bf16) {
      c.dtype = torch::kFloat32;
      c.source = "cpu_no_amx";
      c.reason = absl::StrCat("auto: float32, the CPU has no AMX-BF16",
                              cpu.avx512_bf16 ? " (AVX512-BF16 alone runs bfloat16 slower than float32)"
                                              : "");
    } else if (!cpu.amx_usable) {
      c.dtype = torch::kFloat32;
      c.source = "cpu_amx_not_permitted";
      c.reason = "auto: float32, the CPU has AMX-BF16 but the kernel did not grant this process its tile state";
    } else if (!OneDnnAllowsAmx(cpu.onednn_max_isa)) {
      c.dtype = torch::kFloat32;
      c.source = "onednn_isa_limit";
      c.reason = absl::StrCat("auto: float32, ONEDNN_MAX_CPU_ISA=", cpu.onednn_max_isa,
                              " keeps oneDNN below AMX");
    } else {
      c.dtype = torch::kBFloat16;
      c.source = "cpu_amx_bf16";
      c.reason = "auto: bfloat16, the CPU has AMX-BF16";
    }
    return c;
  }
  c.source = "configured";
  c.reason = absl::StrCat(name, " as ", origin, " says");
  if (name == "float32") {
    c.dtype = torch::kFloat32;
  } else if (name == "bfloat16") {
    c.dtype = torch::kBFloat16;
  } else if (name == "float16") {
    if (device.is_cpu()) {
      return absl::InvalidArgumentError("dtype float16 is for CUDA; use float32, bfloat16 or auto on CPU");
    }
    c.dtype = torch::kFloat16;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("dtype \"", name, "\" is not one of auto, float32, float16, bfloat16"));
  }
  return c;
}

Float32MathPolicy& Float32MathPolicy::Get() {
  static Float32MathPolicy* const policy = new Float32MathPolicy(/*apply=*/true);  // never destroyed
  return *policy;
}

Float32MathPolicy::Float32MathPolicy(bool apply) : apply_(apply) {
  if (!apply_) return;
  at::Context& ctx = at::globalContext();
  // The legacy switches only: LibTorch 2.11 refuses to read them back once the newer
  // fp32_precision API has set the convolution and RNN entries differently.
  ctx.setAllowTF32CuDNN(false);
  ctx.setAllowTF32CuBLAS(false);
  ctx.setAllowBF16ReductionCuBLAS(/*allow_reduced_precision=*/false);
  ctx.setAllowFP16ReductionCuBLAS(/*allow_reduced_precision=*/false);
  ctx.setAllowFP16BF16ReductionMathSDP(false);
}

Float32MathPolicy::Vote::~Vote() { policy_->Leave(allow_tf32_); }

std::shared_ptr<const Float32MathPolicy::Vote> Float32MathPolicy::Join(const torch::Device& device,
                                                                       torch::ScalarType dtype,
                                                                       bool allow_tf32) {
  if (!device.is_cuda() || dtype != torch::kFloat32) return nullptr;
  std::lock_guard<std::mutex> lock(mu_);
  ++float32_models_;
  if (allow_tf32) ++allowing_;
  ApplyLocked();
  return std::shared_ptr<const Vote>(new Vote(this, allow_tf32));
}

void Float32MathPolicy::Leave(bool allow_tf32) {
  std::lock_guard<std::mutex> lock(mu_);
  --float32_models_;
  if (allow_tf32) --allowing_;
  ApplyLocked();
}

void Float32MathPolicy::ApplyLocked() {
  tf32_ = float32_models_ > 0 && allowing_ == float32_models_;
  if (!apply_) return;
  at::globalContext().setAllowTF32CuDNN(tf32_);
  at::globalContext().setAllowTF32CuBLAS(tf32_);
}

bool Float32MathPolicy::tf32_enabled() const {
  std::lock_guard<std::mutex> lock(mu_);
  return tf32_;
}

int Float32MathPolicy::float32_models() const {
  std::lock_guard<std::mutex> lock(mu_);
  return float32_models_;
}

int Float32MathPolicy::allowing_tf32() const {
  std::lock_guard<std::mutex> lock(mu_);
  return allowing_;
}

std::string Tf32Clause(const torch::Device& device, torch::ScalarType dtype, bool allow_tf32) {
  if (device.is_cuda() && dtype == torch::kFloat32) {
    return allow_tf32 ? "; TF32 allowed by config.json, in effect while every loaded CUDA float32 "
                        "model allows it"
                      : "; IEEE float32 convolutions and matmuls (TF32 off)";
  }
  if (!allow_tf32) return "";
  return device.is_cuda() ? "; allow_tf32 has no effect: the model does not compute in float32"
                          : "; allow_tf32 has no effect on the CPU";
}

}  // namespace elliptical::model
