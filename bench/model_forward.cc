// Forward-pass throughput of the C++ models, elliptical against dot-product on the same weights,
// for the paper's shapes (DeiT-Tiny/Small at 224 px, the 16-layer LM at 256 tokens). Writes the
// JSON schema that bench/python_eager.py writes, so bench/run_model_bench.sh can set the two
// side by side.
//
//   model_forward --models deit_tiny,lm16 --batches 1,8,64 --out results.json
#include <algorithm>
#include <chrono>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "bench/report.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "model/nets/decoder_lm.h"
#include "model/io/device.h"
#include "model/io/precision.h"
#include "model/api/runtime.h"
#include "model/nets/packed_linear.h"
#include "model/nets/vit.h"

ABSL_FLAG(std::string, models, "deit_tiny,deit_small,lm16", "deit_tiny, deit_small, lm16");
ABSL_FLAG(std::string, batches, "1,8,64", "batch sizes");
ABSL_FLAG(std::string, modes, "elliptical,dot_product", "attention modes, measured back to back");
ABSL_FLAG(std::string, device, "cpu", "cpu, cuda, cuda:N");
ABSL_FLAG(std::string, dtype, "float32",
          "float32, bfloat16, float16 (CUDA), auto; a comma-separated list is measured interleaved");
ABSL_FLAG(std::string, threads, "0",
          "intra-op threads; 0 keeps LibTorch's default; a comma-separated list (1,2) is measured "
          "interleaved in one process, so a shared machine's noise falls on every count alike");
ABSL_FLAG(double, min_seconds, 3.0, "time each mode of each measurement for at least this long");
ABSL_FLAG(int, warmup, 2, "untimed forwards before each measurement");
ABSL_FLAG(std::string, out, "", "JSON file to write (stdout when empty)");
ABSL_FLAG(bool, tune_malloc, true, "tune glibc's allocator as the server does");
ABSL_FLAG(std::string, pack, "true",
          "pack the ViT's linear weights for oneDNN as the server does (bf16 on the CPU; "
          "model/nets/packed_linear.h): true, false, or both (measured interleaved)");

namespace elliptical::bench {
namespace {

using model::AttentionConfig;
using model::AttentionMode;

constexpr int kLmTokens = 256;  // the paper's segment length

AttentionConfig Attention(AttentionMode mode, int depth, std::optional<double> score_scale) {
  AttentionConfig a;
  a.mode = mode;
  for (int l = 1; l < depth; ++l) a.elliptical_layers.push_back(l);
  a.score_scale = score_scale;
  return a;
}

model::ViTConfig DeiT(const std::string& name) {
  model::ViTConfig c;  // defaults are DeiT-Tiny
  if (name == "deit_small") {
    c.embed_dim = 384;
    c.num_heads = 6;
  }
  return c;
}

model::LmConfig Lm16(AttentionMode mode) {
  model::LmConfig c;
  c.vocab_size = 8000;
  c.shape.d_model = 128;
  c.shape.num_layers = 16;
  c.shape.num_heads = 8;
  c.shape.head_dim = 16;
  c.shape.d_inner = 2048;
  c.shape.embed_scale = std::sqrt(128.0);
  c.attention = Attention(mode, 16, 1.0);  // the paper's LM: no 1/sqrt(d) in elliptical layers
  c.scale_mode = model::ScaleMode::kSegment;
  return c;
}

// A forward pass of one model at one batch size, ready to be timed.
struct Workload {
  std::function<void()> run;
  int tokens_per_item = 0;
};

// One measured configuration; every variant of a (model, batch) runs interleaved.
struct Variant {
  AttentionMode mode;
  torch::ScalarType dtype;
  int threads;  // 0: LibTorch's default
  bool pack;
};

Workload Make(const std::string& name, AttentionMode mode, int batch, torch::Device device,
              torch::ScalarType dtype, bool pack) {
  torch::manual_seed(0);  // same weights for both modes
  if (name == "lm16") {
    model::DecoderLm lm(Lm16(mode));
    lm->to(device, dtype);
    lm->eval();
    torch::Tensor tokens = torch::randint(8000, {batch, kLmTokens}, torch::TensorOptions(torch::kInt64)).to(device);
    torch::Tensor lengths = torch::full({batch}, kLmTokens, torch::kInt64).to(device);
    return {[lm, tokens, lengths]() mutable { lm->forward(tokens, lengths, model::ScaleMode::kSegment); },
            kLmTokens};
  }
  const model::ViTConfig config = DeiT(name);
  model::VisionTransformer vit(config, Attention(mode, config.depth, std::nullopt), 1000);
  vit->to(device, dtype);
  vit->eval();
  if (pack) model::PackLinears(*vit, 1 + config.num_patches());
  torch::Tensor images = torch::randn({batch, 3, config.image_size, config.image_size}).to(device, dtype);
  return {[vit, images]() mutable { vit->forward(images); }, 1 + config.num_patches()};
}

void Synchronize(torch::Device device) {
  if (device.is_cuda()) torch::cuda::synchronize(device.index() < 0 ? 0 : device.index());
}

// Times every variant of one (model, batch) with their forwards interleaved (A B A B ...), so that
// the noise of a shared machine falls on all variants alike and their ratios stay meaningful.
// Thread counts switch per forward through model::SetBatchComputeThreads, as the server's
// instances do per batch (it keeps oneDNN's primitive cache).
std::vector<nlohmann::json> Measure(const std::string& name, const std::vector<Variant>& variants, int batch,
                                    torch::Device device) {
  std::vector<Workload> workloads;
  for (const Variant& v : variants) workloads.push_back(Make(name, v.mode, batch, device, v.dtype, v.pack));
  const int default_threads = torch::get_num_threads();
  auto run = [&](size_t i) {
    model::SetBatchComputeThreads(variants[i].threads > 0 ? variants[i].threads : default_threads);
    workloads[i].run();
  };
  c10::InferenceMode guard;
  for (int i = 0; i < absl::GetFlag(FLAGS_warmup); ++i) {
    for (size_t v = 0; v < variants.size(); ++v) run(v);
  }
  Synchronize(device);
  std::vector<std::vector<double>> seconds(variants.size());
  double total = 0;
  while (total < absl::GetFlag(FLAGS_min_seconds) * variants.size() || seconds[0].size() < 3) {
    for (size_t v = 0; v < variants.size(); ++v) {
      const auto start = std::chrono::steady_clock::now();
      run(v);
      Synchronize(device);
      seconds[v].push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
      total += seconds[v].back();
    }
  }
  std::vector<nlohmann::json> out;
  for (size_t v = 0; v < variants.size(); ++v) {
    std::vector<double>& s = seconds[v];
    std::sort(s.begin(), s.end());
    auto at = [&](double q) { return s[static_cast<size_t>(q * (s.size() - 1) + 0.5)]; };
    const double median = at(0.5);
    const Variant& var = variants[v];
    const std::string mode_name(model::AttentionModeName(var.mode));
    const int threads = var.threads > 0 ? var.threads : default_threads;
    std::cerr << "[cpp] " << name << " b=" << batch << " " << mode_name << " " << model::DtypeName(var.dtype)
              << (var.pack ? "" : " unpacked") << " " << threads << "t: " << median * 1e3
              << " ms/forward, " << batch / median << " items/s\n";
    out.push_back({{"model", name},
                   {"attention", mode_name},
                   {"dtype", model::DtypeName(var.dtype)},
                   {"threads", threads},
                   {"packed", var.pack},
                   {"batch", batch},
                   {"tokens_per_item", workloads[v].tokens_per_item},
                   {"iterations", s.size()},
                   {"median_seconds", median},
                   {"p10_seconds", at(0.1)},
                   {"p90_seconds", at(0.9)},
                   {"items_per_second", batch / median}});
  }
  return out;
}

int Run() {
  auto device = model::ResolveDevice(absl::GetFlag(FLAGS_device));
  if (!device.ok()) {
    std::cerr << device.status() << "\n";
    return 2;
  }
  std::vector<torch::ScalarType> dtypes;
  for (absl::string_view d : absl::StrSplit(absl::GetFlag(FLAGS_dtype), ',')) {
    auto dtype = model::ResolveDtype(std::string(d), *device);
    if (!dtype.ok()) {
      std::cerr << dtype.status() << "\n";
      return 2;
    }
    dtypes.push_back(*dtype);
  }
  std::vector<int> thread_counts;
  for (absl::string_view t : absl::StrSplit(absl::GetFlag(FLAGS_threads), ',')) {
    int n = 0;
    if (!absl::SimpleAtoi(t, &n) || n < 0) {
      std::cerr << "bad thread count " << t << "\n";
      return 2;
    }
    thread_counts.push_back(n);
  }
  const std::string pack = absl::GetFlag(FLAGS_pack);
  if (pack != "true" && pack != "false" && pack != "both") {
    std::cerr << "--pack is true, false or both\n";
    return 2;
  }
  std::vector<bool> packs = pack == "both" ? std::vector<bool>{false, true} : std::vector<bool>{pack == "true"};
  // As the server does (model/api/runtime.h); --tune_malloc=false measures glibc's defaults.
  if (absl::GetFlag(FLAGS_tune_malloc)) model::TuneCpuAllocator();
  std::vector<AttentionMode> modes;
  for (absl::string_view m : absl::StrSplit(absl::GetFlag(FLAGS_modes), ',')) {
    if (m != "elliptical" && m != "dot_product") {
      std::cerr << "unknown mode " << m << "\n";
      return 2;
    }
    modes.push_back(m == "elliptical" ? AttentionMode::kElliptical : AttentionMode::kDotProduct);
  }
  nlohmann::json results = nlohmann::json::array();
  for (absl::string_view name : absl::StrSplit(absl::GetFlag(FLAGS_models), ',')) {
    if (name != "deit_tiny" && name != "deit_small" && name != "lm16") {
      std::cerr << "unknown model " << name << " (deit_tiny, deit_small, lm16)\n";
      return 2;
    }
    for (absl::string_view b : absl::StrSplit(absl::GetFlag(FLAGS_batches), ',')) {
      int batch = 0;
      if (!absl::SimpleAtoi(b, &batch) || batch < 1) {
        std::cerr << "bad batch size " << b << "\n";
        return 2;
      }
      std::vector<Variant> variants;
      for (torch::ScalarType dtype : dtypes) {
        for (bool p : packs) {
          // Packing changes nothing but a bf16 CPU forward: one unpacked float32 is enough.
          if (p != packs.back() && !(dtype == torch::kBFloat16 && device->is_cpu())) continue;
          for (int threads : thread_counts) {
            for (AttentionMode mode : modes) variants.push_back({mode, dtype, threads, p});
          }
        }
      }
      for (auto& r : Measure(std::string(name), variants, batch, *device)) results.push_back(r);
    }
  }
  nlohmann::json report = {
      {"implementation", "cpp"},
      {"device", device->str()},
      {"device_name", device->is_cuda() ? "CUDA device " + device->str() : CpuName()},
      // The first variant's, for bench/summarise_model_bench.py; each result names its own.
      {"dtype", model::DtypeName(dtypes.front())},
      {"threads", thread_counts.front() > 0 ? thread_counts.front() : torch::get_num_threads()},
      {"cpu_isa", model::HostCpuFeatures().amx_bf16      ? "AMX-BF16"
                  : model::HostCpuFeatures().avx512_bf16 ? "AVX512-BF16, no AMX"
                                                         : "no bf16 units"},
      {"torch_version", TORCH_VERSION},
      {"results", results}};
  return WriteReport(report, absl::GetFlag(FLAGS_out));
}

}  // namespace
}  // namespace elliptical::bench

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return elliptical::bench::Run();
}
