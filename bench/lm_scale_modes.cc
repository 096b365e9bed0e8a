// How far the cache-friendly `prefix` estimate of the elliptical metric is from the reference
// `segment` estimate (ELLIPTICAL.md, "Generation with a KV cache"), measured by the C++ model on
// held-out text: perplexity under each mode and how often their next-token argmax agrees.
//
//   lm_scale_modes --model DIR --tokens heldout_tokens.txt [--window 128] [--out result.json]
#include <cmath>
#include <fstream>
#include <iostream>
#include <iterator>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "bench/report.h"
#include "model/nets/decoder_lm.h"
#include "model/config/safetensors.h"
#include "model/io/weights.h"

ABSL_FLAG(std::string, model, "", "language_model directory");
ABSL_FLAG(std::string, tokens, "", "file of whitespace-separated token ids (held-out text)");
ABSL_FLAG(int, window, 128, "tokens per scored window (the model's training segment length)");
ABSL_FLAG(int, batch, 16, "windows per forward");
ABSL_FLAG(std::string, out, "", "JSON file to write (stdout when empty)");

namespace elliptical::bench {
namespace {

int Run() {
  auto config = model::ReadLmConfig(absl::GetFlag(FLAGS_model));
  if (!config.ok()) {
    std::cerr << config.status() << "\n";
    return 2;
  }
  auto weights = model::SafetensorsFile::Open(config->runtime.weights_path);
  if (!weights.ok()) {
    std::cerr << weights.status() << "\n";
    return 2;
  }
  model::DecoderLm lm(*config);
  lm->eval();
  if (absl::Status s = model::LoadWeights(*lm, *weights); !s.ok()) {
    std::cerr << s << "\n";
    return 2;
  }
  std::ifstream in(absl::GetFlag(FLAGS_tokens));
  std::vector<int64_t> ids{std::istream_iterator<int64_t>(in), std::istream_iterator<int64_t>()};
  const int64_t window = absl::GetFlag(FLAGS_window);
  const int64_t windows = static_cast<int64_t>(ids.size()) / window;
  if (windows < 1) {
    std::cerr << "need at least one window of " << window << " tokens\n";
    return 2;
  }
  torch::Tensor all = torch::tensor(ids).narrow(0, 0, windows * window).view({windows, window});
  if (all.max().item<int64_t>() >= config->vocab_size || all.min().item<int64_t>() < 0) {
    std::cerr << "token ids outside the model's vocabulary\n";
    return 2;
  }

  c10::InferenceMode guard;
  double nll_prefix = 0, nll_segment = 0;
  int64_t agree = 0, scored = 0;
  for (int64_t start = 0; start < windows; start += absl::GetFlag(FLAGS_batch)) {
    torch::Tensor batch = all.narrow(0, start, std::min<int64_t>(absl::GetFlag(FLAGS_batch), windows - start));
    torch::Tensor lengths = torch::full({batch.size(0)}, window, torch::kInt64);
    torch::Tensor targets = batch.narrow(1, 1, window - 1).unsqueeze(-1);
    auto score = [&](model::ScaleMode mode, torch::Tensor* argmax) {
      torch::Tensor logp =
          torch::log_softmax(lm->forward(batch, lengths, mode).narrow(1, 0, window - 1).to(torch::kFloat32), -1);
      *argmax = logp.argmax(-1);
      return -logp.gather(-1, targets).sum().item<double>();
    };
    torch::Tensor top_prefix, top_segment;
    nll_prefix += score(model::ScaleMode::kPrefix, &top_prefix);
    nll_segment += score(model::ScaleMode::kSegment, &top_segment);
    agree += (top_prefix == top_segment).sum().item<int64_t>();
    scored += targets.numel();
    std::cerr << "\r[lm_scale_modes] " << std::min(start + absl::GetFlag(FLAGS_batch), windows) << "/"
              << windows << " windows" << std::flush;
  }
  std::cerr << "\n";
  nlohmann::json report = {{"model", absl::GetFlag(FLAGS_model)},
                           {"window", window},
                           {"scored_tokens", scored},
                           {"ppl_segment", std::exp(nll_segment / scored)},
                           {"ppl_prefix", std::exp(nll_prefix / scored)},
                           {"next_token_agreement", static_cast<double>(agree) / scored}};
  return WriteReport(report, absl::GetFlag(FLAGS_out));
}

}  // namespace
}  // namespace elliptical::bench

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return elliptical::bench::Run();
}
