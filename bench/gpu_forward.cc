// Forward passes of DeiT-shaped ViT classifiers on a GPU (or, reduced, on the CPU): latency,
// images/s, achieved TFLOP/s and the fraction of the device's dense bf16 peak, elliptical
// against dot-product attention on the same weights, per dtype and batch size.
//
// The weights are random (seeded), of the real DeiT-Tiny/Small/Base shapes: a forward's time
// depends on the shapes and the dtype, not on the values. Results are written as they are
// measured, one JSON line per (model, dtype, batch, attention) to --jsonl and the whole table to
// --md after every point, so a run cut off by a deadline keeps what it measured; --budget_s
// makes it stop by itself, before a point it expects to end past the budget.
//
//   gpu_forward --device cuda --budget_s 120 --jsonl r.jsonl --md r.md
//   gpu_forward --device cpu --models deit_tiny --batches 1,2 --dtypes float32   (reduced form)
//
// FLOPs are counted analytically (ForwardFlops below: matmuls only, 2 per multiply-add).
#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#ifdef ELLIPTICAL_BENCH_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDACachingAllocator.h>
#endif

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "bench/report.h"
#include "model/api/runtime.h"
#include "model/io/device.h"
#include "model/nets/packed_linear.h"
#include "model/nets/vit.h"

ABSL_FLAG(std::string, device, "cuda", "cuda, cuda:N or cpu (the reduced form: small batches)");
ABSL_FLAG(std::string, models, "deit_tiny,deit_small,deit_base", "deit_tiny, deit_small, deit_base");
ABSL_FLAG(std::string, dtypes, "bfloat16,float32", "bfloat16, float32, float16");
ABSL_FLAG(std::string, batches, "1,2,4,8,16,32,64,128,256", "batch sizes, ascending");
ABSL_FLAG(std::string, modes, "elliptical,dot_product", "attention modes, interleaved per point");
ABSL_FLAG(int, warmup, 3, "untimed forwards of each mode before each point");
ABSL_FLAG(double, min_seconds, 0.25, "time each mode of each point for at least this long");
ABSL_FLAG(int, min_iters, 5, "and at least this many forwards");
ABSL_FLAG(int, max_iters, 200, "and at most this many");
ABSL_FLAG(double, budget_s, 0, "stop before a point expected to end later than this many seconds "
                               "after the start (0: no limit)");
ABSL_FLAG(std::string, jsonl, "", "append one JSON line per measurement here (stdout when empty)");
ABSL_FLAG(std::string, md, "", "rewrite this Markdown table after every point");
ABSL_FLAG(std::string, label, "", "the device's name in the report (default: what the device says)");
ABSL_FLAG(std::string, device_label, "", "the label results are named with (default: the name, "
                                         "lower case, dashes: nvidia-h100-80gb-hbm3)");
ABSL_FLAG(double, peak_tflops, 0, "dense bf16 peak of the device, TFLOP/s (0: from its name)");
ABSL_FLAG(bool, tf32, false, "allow TF32 in float32 matmuls and convolutions (CUDA)");
ABSL_FLAG(int, threads, 0, "CPU: intra-op threads (0: LibTorch's default)");

namespace elliptical::bench {
namespace {

using Clock = std::chrono::steady_clock;
using model::AttentionConfig;
using model::AttentionMode;

constexpr int kClasses = 1000;  // ImageNet's head

model::ViTConfig DeiT(const std::string& name) {
  model::ViTConfig c;  // the defaults are DeiT-Tiny: 224 px, patch 16, 12 blocks, embed 192, 3 heads
  if (name == "deit_small") {
    c.embed_dim = 384;
    c.num_heads = 6;
  } else if (name == "deit_base") {
    c.embed_dim = 768;
    c.num_heads = 12;
  }
  return c;
}

// FLOPs of one image's forward, matmuls only, 2 FLOPs per multiply-add. With N = 1 + (S/P)^2
// tokens, embedding D, L blocks, MLP hidden M (4D), C classes, patch P on 3 channels:
//   patch embedding  2 * (N-1) * (3 P^2) * D          (the stride-P convolution is a matmul)
//   per block        2 * N * D * 3D     qkv
//                  + 2 * N * N * D      scores q k^T (all heads together: H * N^2 * D/H)
//                  + 2 * N * N * D      scores times v
//                  + 2 * N * D * D      output projection
//                  + 2 * 2 * N * D * M  MLP (two matmuls)
//                  = 8 N D^2 + 4 N^2 D + 4 N D M  (24 N D^2 + 4 N^2 D at M = 4D)
//   head             2 * D * C          (the class token only)
// Left out, each O(N*D) per block beside the block's O(N*D^2): LayerNorm, GELU, softmax, bias
// adds, residuals, and the elliptical metric (a mean of |v_l - v_{l-1}| over tokens and a
// scaling of q), so both attention modes are credited the same FLOPs. DeiT-Tiny: 2.51 GFLOP,
// Small: 9.20, Base: 35.1 (timm's 1.3, 4.6 and 17.6 GMACs).
double ForwardFlops(const model::ViTConfig& c, int classes) {
  const double n = 1 + c.num_patches(), d = c.embed_dim, m = c.mlp_hidden_dim();
  const double patch = 2.0 * c.num_patches() * (c.in_channels * c.patch_size * c.patch_size) * d;
  const double block = 8 * n * d * d + 4 * n * n * d + 4 * n * d * m;
  return patch + c.depth * block + 2.0 * d * classes;
}

// Dense (no sparsity) bf16 tensor-core peak by the name CUDA reports, TFLOP/s; nullopt where the
// device is not in the table (the fraction is then printed as n/a, not guessed).
std::optional<double> DenseBf16Peak(const std::string& name) {
  auto has = [&](const char* s) { return name.find(s) != std::string::npos; };
  if (has("H200")) return 989.4;
  if (has("H100") && has("PCIe")) return 756.0;
  if (has("H100") && has("HBM3")) return 989.4;  // "NVIDIA H100 80GB HBM3": the SXM part
  return std::nullopt;
}

std::string Slug(const std::string& s) {
  std::string out;
  for (char ch : s) {
    if (std::isalnum(static_cast<unsigned char>(ch))) {
      out += static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    } else if (!out.empty() && out.back() != '-') {
      out += '-';
    }
  }
  while (!out.empty() && out.back() == '-') out.pop_back();
  return out;
}

std::string DeviceName(const torch::Device& device) {
  if (device.is_cpu()) return CpuName();
#ifdef ELLIPTICAL_BENCH_CUDA
  return at::cuda::getDeviceProperties(device.index())->name;
#else
  return "CUDA device " + device.str();
#endif
}

void Synchronize(const torch::Device& device) {
  if (device.is_cuda()) torch::cuda::synchronize(device.index());
}

void ReleaseCache(const torch::Device& device) {
#ifdef ELLIPTICAL_BENCH_CUDA
  if (device.is_cuda()) c10::cuda::CUDACachingAllocator::emptyCache();
#endif
  (void)device;
}

std::string Now() {
  char buf[32];
  const std::time_t t = std::time(nullptr);
  std::strftime(buf, sizeof buf, "%FT%TZ", std::gmtime(&t));
  return buf;
}

// Appends JSON lines, flushed one by one: a run killed at its deadline keeps every line it wrote.
class Sink {
 public:
  explicit Sink(const std::string& path) : path_(path) {
    if (!path.empty()) out_.open(path, std::ios::app);
  }
  bool ok() const { return path_.empty() || out_.good(); }
  void Write(const nlohmann::json& j) {
    if (path_.empty()) {
      std::cout << j.dump() << std::endl;
    } else {
      out_ << j.dump() << std::endl;
    }
  }

 private:
  std::string path_;
  std::ofstream out_;
};

struct Row {  // one point: both attention modes at one (model, dtype, batch)
  std::string model, dtype;
  int batch = 0;
  std::vector<std::string> modes;
  std::vector<double> median_ms, images_per_s, tflops;
  std::optional<double> fraction;  // elliptical's (the first mode's) share of the bf16 peak
  std::string note;                // "out of memory", ...
};

std::string Fixed(double v, int digits) { return absl::StrFormat("%.*f", digits, v); }

void WriteMarkdown(const std::string& path, const nlohmann::json& run, const std::vector<Row>& rows,
                   const std::string& status) {
  if (path.empty()) return;
  std::ofstream md(path);
  md << "# GPU forward: " << run["device_name"].get<std::string>() << "\n\n"
     << "ViT classifiers of DeiT-Tiny/Small/Base shape (224 px, patch 16, 12 blocks, 1000 classes), "
        "random weights (seeded; speed depends on shapes, not values), elliptical attention in "
        "blocks 1-11 against dot-product on the same weights, forwards interleaved. Latency: one "
        "forward between two device synchronisations, median over the timed iterations after "
     << run["warmup"].get<int>() << " warm-up forwards. TFLOP/s from the analytic count "
        "(bench/gpu_forward.cc, ForwardFlops: matmuls only; GFLOP per image: ";
  bool first = true;
  for (const auto& [name, g] : run["gflop_per_image"].items()) {
    md << (first ? "" : ", ") << name << " " << Fixed(g.get<double>(), 2);
    first = false;
  }
  md << "). % peak: elliptical's TFLOP/s against the device's dense bf16 peak ("
     << (run["peak_bf16_tflops"].is_null() ? std::string("not in the table: n/a")
                                            : Fixed(run["peak_bf16_tflops"].get<double>(), 1) + " TFLOP/s")
     << "), whatever the dtype.\n\n"
     << "Device " << run["device"].get<std::string>() << ", torch " << run["torch"].get<std::string>()
     << ", TF32 " << (run["tf32"].get<bool>() ? "allowed" : "off") << ", started " << run["started"].get<std::string>()
     << ". Status: " << status << ".\n\n"
     << "| model | dtype | batch | ell ms | dot ms | ell img/s | dot img/s | ell TFLOP/s | dot TFLOP/s | ell % peak | ell overhead |\n"
     << "|---|---|---|---|---|---|---|---|---|---|---|\n";
  for (const Row& r : rows) {
    md << "| " << r.model << " | " << r.dtype << " | " << r.batch << " | ";
    if (!r.note.empty()) {
      md << r.note << " | | | | | | | |\n";
      continue;
    }
    auto at = [&](const std::vector<double>& v, size_t i, int digits) {
      return i < v.size() ? Fixed(v[i], digits) : std::string();
    };
    md << at(r.median_ms, 0, 3) << " | " << at(r.median_ms, 1, 3) << " | " << at(r.images_per_s, 0, 1) << " | "
       << at(r.images_per_s, 1, 1) << " | " << at(r.tflops, 0, 2) << " | " << at(r.tflops, 1, 2) << " | "
       << (r.fraction ? Fixed(100 * *r.fraction, 1) + "%" : std::string("n/a")) << " | "
       << (r.median_ms.size() > 1 ? absl::StrFormat("%+.1f%%", 100 * (r.median_ms[0] / r.median_ms[1] - 1))
                                  : std::string())
       << " |\n";
  }
}

int Run() {
  const Clock::time_point start = Clock::now();
  auto elapsed = [&] { return std::chrono::duration<double>(Clock::now() - start).count(); };
  const double budget = absl::GetFlag(FLAGS_budget_s);

  auto device = model::ResolveDevice(absl::GetFlag(FLAGS_device));
  if (!device.ok()) {
    std::cerr << "gpu_forward: " << device.status().message() << "\n";
    return 2;
  }
  if (absl::GetFlag(FLAGS_threads) > 0) torch::set_num_threads(absl::GetFlag(FLAGS_threads));
  std::vector<std::string> models, dtypes, modes;
  for (absl::string_view m : absl::StrSplit(absl::GetFlag(FLAGS_models), ',', absl::SkipEmpty())) {
    if (m != "deit_tiny" && m != "deit_small" && m != "deit_base") {
      std::cerr << "unknown model " << m << " (deit_tiny, deit_small, deit_base)\n";
      return 2;
    }
    models.emplace_back(m);
  }
  std::vector<torch::ScalarType> scalar_types;
  for (absl::string_view d : absl::StrSplit(absl::GetFlag(FLAGS_dtypes), ',', absl::SkipEmpty())) {
    auto dtype = model::ResolveDtype(std::string(d), *device);
    if (!dtype.ok()) {
      std::cerr << "gpu_forward: " << dtype.status().message() << "\n";
      return 2;
    }
    dtypes.emplace_back(d);
    scalar_types.push_back(*dtype);
  }
  for (absl::string_view m : absl::StrSplit(absl::GetFlag(FLAGS_modes), ',', absl::SkipEmpty())) {
    if (m != "elliptical" && m != "dot_product") {
      std::cerr << "unknown mode " << m << "\n";
      return 2;
    }
    modes.emplace_back(m);
  }
  std::vector<int> batches;
  for (absl::string_view b : absl::StrSplit(absl::GetFlag(FLAGS_batches), ',', absl::SkipEmpty())) {
    int n = 0;
    if (!absl::SimpleAtoi(b, &n) || n < 1) {
      std::cerr << "bad batch size " << b << "\n";
      return 2;
    }
    batches.push_back(n);
  }
  if (models.empty() || dtypes.empty() || modes.empty() || batches.empty()) {
    std::cerr << "nothing to measure\n";
    return 2;
  }
  if (device->is_cuda()) {
    at::globalContext().setAllowTF32CuBLAS(absl::GetFlag(FLAGS_tf32));
    at::globalContext().setAllowTF32CuDNN(absl::GetFlag(FLAGS_tf32));
  }

  const std::string device_name =
      absl::GetFlag(FLAGS_label).empty() ? DeviceName(*device) : absl::GetFlag(FLAGS_label);
  const std::string device_label =
      absl::GetFlag(FLAGS_device_label).empty() ? Slug(device_name) : absl::GetFlag(FLAGS_device_label);
  std::optional<double> peak = DenseBf16Peak(device_name);
  if (absl::GetFlag(FLAGS_peak_tflops) > 0) peak = absl::GetFlag(FLAGS_peak_tflops);
  if (device->is_cpu()) peak = absl::GetFlag(FLAGS_peak_tflops) > 0 ? peak : std::nullopt;

  nlohmann::json run = {{"record", "run"},
                        {"bench", "gpu_forward"},
                        {"device", device->str()},
                        {"device_name", device_name},
                        {"device_label", device_label},
                        {"peak_bf16_tflops", peak ? nlohmann::json(*peak) : nlohmann::json()},
                        {"torch", TORCH_VERSION},
                        {"tf32", device->is_cuda() && absl::GetFlag(FLAGS_tf32)},
                        {"threads", torch::get_num_threads()},
                        {"warmup", absl::GetFlag(FLAGS_warmup)},
                        {"budget_s", budget},
                        {"started", Now()}};
  run["gflop_per_image"] = nlohmann::json::object();
  for (const std::string& m : models) run["gflop_per_image"][m] = ForwardFlops(DeiT(m), kClasses) / 1e9;
  Sink sink(absl::GetFlag(FLAGS_jsonl));
  if (!sink.ok()) {
    std::cerr << "cannot write " << absl::GetFlag(FLAGS_jsonl) << "\n";
    return 1;
  }
  sink.Write(run);
  std::cerr << "[gpu_forward] " << device_name << " (" << device->str() << "), bf16 peak "
            << (peak ? Fixed(*peak, 1) + " TFLOP/s" : std::string("unknown")) << ", budget "
            << (budget > 0 ? Fixed(budget, 0) + " s" : std::string("none")) << "\n";

  std::vector<Row> rows;
  std::string status = "running";
  const std::string md = absl::GetFlag(FLAGS_md);
  WriteMarkdown(md, run, rows, status);
  double last_point_s = 0;  // the previous point's time, to judge whether the next one fits
  bool stopped = false;
  c10::InferenceMode inference;
  // Every model in the first dtype (bfloat16 by default: the tensor-core numbers) before any in
  // the next, so that a budget cut loses float32's largest model first.
  for (size_t di = 0; di < dtypes.size() && !stopped; ++di) {
    for (size_t mi = 0; mi < models.size() && !stopped; ++mi) {
      if (budget > 0 && elapsed() > budget) {
        stopped = true;
        break;
      }
      const model::ViTConfig config = DeiT(models[mi]);
      const double flops = ForwardFlops(config, kClasses);
      // The same seed for every mode: the same weights, elliptical or not.
      std::vector<model::VisionTransformer> nets;
      for (const std::string& mode : modes) {
        torch::manual_seed(0);
        AttentionConfig attention;
        attention.mode = mode == "elliptical" ? AttentionMode::kElliptical : AttentionMode::kDotProduct;
        for (int l = 1; l < config.depth; ++l) attention.elliptical_layers.push_back(l);
        model::VisionTransformer net(config, attention, kClasses);
        net->to(*device, scalar_types[di]);
        net->eval();
        // On the CPU, as the server does: linear weights packed for oneDNN (bf16 would otherwise
        // take LibTorch's slow unpacked path); PackLinears leaves CUDA models alone.
        if (device->is_cpu()) model::PackLinears(*net, 1 + config.num_patches());
        nets.push_back(net);
      }
      last_point_s = 0;
      for (int batch : batches) {
        // A point at twice the batch takes about twice as long once the device is busy.
        if (budget > 0 && elapsed() + 2 * last_point_s > budget) {
          stopped = true;
          break;
        }
        const Clock::time_point point_start = Clock::now();
        Row row{models[mi], dtypes[di], batch, modes, {}, {}, {}, std::nullopt, ""};
        std::vector<std::vector<double>> seconds(modes.size());
        try {
          torch::manual_seed(1);
          const torch::Tensor images =
              torch::randn({batch, config.in_channels, config.image_size, config.image_size}).to(*device, scalar_types[di]);
          for (int w = 0; w < absl::GetFlag(FLAGS_warmup); ++w) {
            for (auto& net : nets) net->forward(images);
          }
          Synchronize(*device);
          double total = 0;
          for (int it = 0; it < absl::GetFlag(FLAGS_max_iters); ++it) {
            if (it >= absl::GetFlag(FLAGS_min_iters) &&
                (total >= absl::GetFlag(FLAGS_min_seconds) * modes.size() ||
                 (budget > 0 && elapsed() > budget))) {
              break;
            }
            for (size_t k = 0; k < nets.size(); ++k) {
              const Clock::time_point t0 = Clock::now();
              nets[k]->forward(images);
              Synchronize(*device);
              seconds[k].push_back(std::chrono::duration<double>(Clock::now() - t0).count());
              total += seconds[k].back();
            }
          }
        } catch (const c10::OutOfMemoryError& e) {
          row.note = "out of memory";
        }
        if (!row.note.empty()) {
          std::cerr << "[gpu_forward] " << models[mi] << " " << dtypes[di] << " b=" << batch << ": out of memory\n";
          sink.Write({{"record", "oom"}, {"model", models[mi]}, {"dtype", dtypes[di]}, {"batch", batch},
                      {"device_label", device_label}});
          rows.push_back(row);
          WriteMarkdown(md, run, rows, status);
          ReleaseCache(*device);
          break;  // larger batches need more memory still
        }
        for (size_t k = 0; k < modes.size(); ++k) {
          std::vector<double>& s = seconds[k];
          std::sort(s.begin(), s.end());
          auto q = [&](double p) { return s[static_cast<size_t>(p * (s.size() - 1) + 0.5)]; };
          const double median = q(0.5);
          const double tflops = flops * batch / median / 1e12;
          std::optional<double> fraction;
          if (peak) fraction = tflops / *peak;
          row.median_ms.push_back(1e3 * median);
          row.images_per_s.push_back(batch / median);
          row.tflops.push_back(tflops);
          if (k == 0) row.fraction = fraction;
          sink.Write({{"record", "point"},
                      {"device_label", device_label},
                      {"model", models[mi]},
                      {"dtype", dtypes[di]},
                      {"batch", batch},
                      {"attention", modes[k]},
                      {"iterations", s.size()},
                      {"latency_ms", {{"median", 1e3 * median}, {"p10", 1e3 * q(0.1)}, {"p90", 1e3 * q(0.9)}}},
                      {"images_per_second", batch / median},
                      {"gflop_per_image", flops / 1e9},
                      {"tflops", tflops},
                      {"fraction_of_bf16_peak", fraction ? nlohmann::json(*fraction) : nlohmann::json()}});
          std::cerr << absl::StrFormat("[gpu_forward] %-10s %-8s b=%-3d %-11s %9.3f ms %9.1f img/s %7.2f TFLOP/s %s\n",
                                       models[mi], dtypes[di], batch, modes[k], 1e3 * median, batch / median, tflops,
                                       fraction ? absl::StrFormat("%.1f%% of peak", 100 * *fraction) : "n/a");
        }
        rows.push_back(row);
        WriteMarkdown(md, run, rows, status);
        last_point_s = std::chrono::duration<double>(Clock::now() - point_start).count();
      }
      nets.clear();
      ReleaseCache(*device);
    }
  }
  status = stopped ? absl::StrFormat("stopped by the %.0f s budget after %.0f s", budget, elapsed())
                   : absl::StrFormat("complete in %.0f s", elapsed());
  sink.Write({{"record", stopped ? "stopped" : "done"}, {"seconds", elapsed()}, {"status", status}});
  WriteMarkdown(md, run, rows, status);
  std::cerr << "[gpu_forward] " << status << "\n";
  return 0;
}

}  // namespace
}  // namespace elliptical::bench

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return elliptical::bench::Run();
}
