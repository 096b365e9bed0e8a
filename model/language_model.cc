#include "model/language_model.h"


#include <torch/torch.h>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "model/decoder_lm.h"
#include "model/device.h"
#include "model/layer_stats.h"
#include "model/module_loader.h"
#include "model/weights.h"

namespace elliptical::model {
namespace {

namespace F = torch::nn::functional;

class LmSequence final : public LanguageModel::Sequence {
 public:
  int length() const override { return static_cast<int>(tokens.size()); }
  int64_t cache_bytes() const override {
    int64_t bytes = 0;
    for (const auto* list : {&keys, &values, &metric_sum}) {
      for (const torch::Tensor& t : *list) {
        if (t.defined()) bytes += t.numel() * t.element_size();
      }
    }
    return bytes;
  }

  std::vector<int32_t> tokens;
  // Prefix mode only: per layer (1, H, length, Dh) and (1, H, Dh).
  std::vector<torch::Tensor> keys, values, metric_sum;
};

class DecoderLanguageModel final : public LanguageModel {
 public:
  DecoderLanguageModel(DecoderLm net, torch::Device device, ModelDescription description)
      : net_(std::move(net)), device_(device), description_(std::move(description)) {}

  absl::StatusOr<std::vector<Logits>> Prefill(
      absl::Span<const std::vector<int32_t>> prompts,
      std::vector<std::unique_ptr<Sequence>>* sequences,
      std::vector<std::vector<LayerStats>>* stats) override {
    std::vector<std::vector<int32_t>> rows(prompts.begin(), prompts.end());
    for (size_t i = 0; i < rows.size(); ++i) {
      if (rows[i].empty()) return absl::InvalidArgumentError(absl::StrCat("prompt ", i, " is empty"));
      ELLIPTICAL_RETURN_IF_ERROR(CheckTokens(rows[i], i));
    }
    sequences->clear();
    try {
      c10::InferenceMode inference;
      auto [tokens, lengths] = Batch(rows);
      const bool prefix = config().scale_mode == ScaleMode::kPrefix;
      LmCache cache;
      std::vector<LayerTrace> trace;
      torch::Tensor logits = net_->forward(tokens, lengths, config().scale_mode,
                                           prefix ? &cache : nullptr, stats ? &trace : nullptr);
      if (stats) *stats = SummariseTrace(trace, static_cast<int64_t>(rows.size()));
      for (size_t b = 0; b < rows.size(); ++b) {
        auto seq = std::make_unique<LmSequence>();
        seq->tokens = rows[b];
        const int64_t n = static_cast<int64_t>(rows[b].size());
        for (size_t l = 0; prefix && l < cache.keys.size(); ++l) {
          seq->keys.push_back(cache.keys[l].narrow(0, b, 1).narrow(2, 0, n).clone());
          seq->values.push_back(cache.values[l].narrow(0, b, 1).narrow(2, 0, n).clone());
          const torch::Tensor& sum = cache.metric_sum[l];
          seq->metric_sum.push_back(sum.defined() ? sum.narrow(0, b, 1).clone() : sum);
        }
        sequences->push_back(std::move(seq));
      }
      return LastLogits(logits, lengths);
    } catch (const c10::Error& e) {
      return absl::InternalError(absl::StrCat("prefill failed: ", e.what_without_backtrace()));
    }
  }

  absl::StatusOr<std::vector<Logits>> Step(absl::Span<Sequence* const> sequences,
                                           absl::Span<const int32_t> tokens) override {
    if (sequences.size() != tokens.size()) {
      return absl::InvalidArgumentError("Step needs one token per sequence");
    }
    std::vector<LmSequence*> seqs;
    for (size_t i = 0; i < sequences.size(); ++i) {
      seqs.push_back(static_cast<LmSequence*>(sequences[i]));
      if (seqs.back()->length() + 1 > config().shape.max_positions) {
        return absl::OutOfRangeError(absl::StrCat("sequence ", i, " reached the model's ",
                                                  config().shape.max_positions, " positions"));
      }
      ELLIPTICAL_RETURN_IF_ERROR(CheckTokens({tokens[i]}, i));
    }
    if (seqs.empty()) return std::vector<Logits>();
    try {
      c10::InferenceMode inference;
      if (config().scale_mode == ScaleMode::kSegment) return StepSegment(seqs, tokens);
      return StepPrefix(seqs, tokens);
    } catch (const c10::Error& e) {
      return absl::InternalError(absl::StrCat("decode step failed: ", e.what_without_backtrace()));
    }
  }

  absl::StatusOr<std::vector<float>> TokenLogProbs(absl::Span<const int32_t> tokens,
                                                   ScaleMode mode) override {
    std::vector<int32_t> row(tokens.begin(), tokens.end());
    if (row.size() < 2) return absl::InvalidArgumentError("need at least two tokens to score");
    ELLIPTICAL_RETURN_IF_ERROR(CheckTokens(row, 0));
    try {
      c10::InferenceMode inference;
      auto [batch, lengths] = Batch({row});
      torch::Tensor logp = torch::log_softmax(
          net_->forward(batch, lengths, mode)[0].to(torch::kFloat32), -1);  // (L, V)
      torch::Tensor next = batch[0].narrow(0, 1, batch.size(1) - 1).unsqueeze(1);
      torch::Tensor picked =
          logp.narrow(0, 0, batch.size(1) - 1).gather(1, next).squeeze(1).to(torch::kCPU).contiguous();
      return std::vector<float>(picked.data_ptr<float>(), picked.data_ptr<float>() + picked.numel());
    } catch (const c10::Error& e) {
      return absl::InternalError(absl::StrCat("scoring failed: ", e.what_without_backtrace()));
    }
  }

  int64_t CacheBytesPerToken() const override {
    const LmShape& s = config().shape;
    const int64_t element = c10::elementSize(net_->parameters().front().scalar_type());
    return 2LL * s.num_layers * s.num_heads * s.head_dim * element;
  }

  const ModelDescription& description() const override { return description_; }
  const LmConfig& config() const override { return net_->config(); }

 private:
  absl::Status CheckTokens(const std::vector<int32_t>& tokens, size_t index) const {
    if (static_cast<int>(tokens.size()) > config().shape.max_positions) {
      return absl::InvalidArgumentError(absl::StrCat("sequence ", index, " has ", tokens.size(),
                                                     " tokens; the model takes at most ",
                                                     config().shape.max_positions));
    }
    for (int32_t t : tokens) {
      if (t < 0 || t >= config().vocab_size) {
        return absl::InvalidArgumentError(absl::StrCat("sequence ", index, " holds token id ", t,
                                                       ", outside the vocabulary [0, ",
                                                       config().vocab_size, ")"));
      }
    }
    return absl::OkStatus();
  }

  // Right-padded (B, L) int64 tokens and (B) lengths on the device.
  std::pair<torch::Tensor, torch::Tensor> Batch(const std::vector<std::vector<int32_t>>& rows) const {
    size_t longest = 0;
    for (const auto& r : rows) longest = std::max(longest, r.size());
    torch::Tensor tokens = torch::zeros({static_cast<int64_t>(rows.size()), static_cast<int64_t>(longest)},
                                        torch::kInt64);
    torch::Tensor lengths = torch::empty({static_cast<int64_t>(rows.size())}, torch::kInt64);
    auto t = tokens.accessor<int64_t, 2>();
    for (size_t b = 0; b < rows.size(); ++b) {
      for (size_t i = 0; i < rows[b].size(); ++i) t[b][i] = rows[b][i];
      lengths[b] = static_cast<int64_t>(rows[b].size());
    }
    return {tokens.to(device_), lengths.to(device_)};
  }

  // logits (B, L, V) -> each row's logits at its last real token.
  static std::vector<Logits> LastLogits(const torch::Tensor& logits, const torch::Tensor& lengths) {
    const int64_t b = logits.size(0), v = logits.size(2);
    torch::Tensor index = (lengths - 1).view({b, 1, 1}).expand({b, 1, v});
    return ToVectors(logits.gather(1, index).squeeze(1));
  }

  static std::vector<Logits> ToVectors(const torch::Tensor& rows) {  // (B, V)
    torch::Tensor cpu = rows.to(torch::kCPU, torch::kFloat32).contiguous();
    std::vector<Logits> out(cpu.size(0));
    const float* p = cpu.data_ptr<float>();
    for (int64_t b = 0; b < cpu.size(0); ++b) out[b].assign(p + b * cpu.size(1), p + (b + 1) * cpu.size(1));
    return out;
  }

  // The reference estimate cannot be cached: every step recomputes every sequence.
  std::vector<Logits> StepSegment(const std::vector<LmSequence*>& seqs, absl::Span<const int32_t> tokens) {
    std::vector<std::vector<int32_t>> rows;
    for (size_t i = 0; i < seqs.size(); ++i) {
      seqs[i]->tokens.push_back(tokens[i]);
      rows.push_back(seqs[i]->tokens);
    }
    auto [batch, lengths] = Batch(rows);
    return LastLogits(net_->forward(batch, lengths, ScaleMode::kSegment), lengths);
  }

  std::vector<Logits> StepPrefix(const std::vector<LmSequence*>& seqs, absl::Span<const int32_t> tokens) {
    const int64_t b = static_cast<int64_t>(seqs.size());
    int64_t longest = 0;
    for (const LmSequence* s : seqs) longest = std::max<int64_t>(longest, s->length());
    // Gather the sequences' caches into one right-padded batch.
    LmCache cache;
    const size_t layers = seqs.front()->keys.size();
    auto padded = [&](const torch::Tensor& t) {
      return F::pad(t, F::PadFuncOptions({0, 0, 0, longest + 1 - t.size(2)}));
    };
    for (size_t l = 0; l < layers; ++l) {
      std::vector<torch::Tensor> k, v, sum;
      for (const LmSequence* s : seqs) {
        k.push_back(padded(s->keys[l]));
        v.push_back(padded(s->values[l]));
        if (s->metric_sum[l].defined()) sum.push_back(s->metric_sum[l]);
      }
      cache.keys.push_back(torch::cat(k, 0));
      cache.values.push_back(torch::cat(v, 0));
      cache.metric_sum.push_back(sum.empty() ? torch::Tensor() : torch::cat(sum, 0));
    }
    std::vector<int64_t> lengths, next;
    for (size_t i = 0; i < seqs.size(); ++i) {
      lengths.push_back(seqs[i]->length());
      next.push_back(tokens[i]);
    }
    cache.lengths = torch::tensor(lengths, torch::kInt64).to(device_);
    torch::Tensor logits = net_->Decode(torch::tensor(next, torch::kInt64).to(device_), &cache);
    for (int64_t i = 0; i < b; ++i) {
      LmSequence* s = seqs[i];
      const int64_t n = s->length() + 1;
      for (size_t l = 0; l < layers; ++l) {
        s->keys[l] = cache.keys[l].narrow(0, i, 1).narrow(2, 0, n).clone();
        s->values[l] = cache.values[l].narrow(0, i, 1).narrow(2, 0, n).clone();
        if (cache.metric_sum[l].defined()) s->metric_sum[l] = cache.metric_sum[l].narrow(0, i, 1).clone();
      }
      s->tokens.push_back(tokens[i]);
    }
    return ToVectors(logits);
  }

  DecoderLm net_;
  const torch::Device device_;
  const ModelDescription description_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<LanguageModel>> LanguageModel::Load(const std::string& directory,
                                                                    const LoadOptions& options) {
  ELLIPTICAL_ASSIGN_OR_RETURN(LmConfig config, ReadLmConfig(directory));
  ELLIPTICAL_ASSIGN_OR_RETURN(Placement placement, ResolvePlacement(config.runtime, options));
  return GuardLoad<std::unique_ptr<LanguageModel>>(
      directory, [&]() -> absl::StatusOr<std::unique_ptr<LanguageModel>> {
        DecoderLm net(config);
        ELLIPTICAL_RETURN_IF_ERROR(PlaceAndLoad(*net, placement, config.runtime.weights_path));
        ModelDescription d = DescribeModule(ModelFamily::kLanguageModel, placement, config.attention, *net);
        d.num_layers = config.shape.num_layers;
        d.num_heads = config.shape.num_heads;
        d.embed_dim = config.shape.d_model;
        return std::unique_ptr<LanguageModel>(
            new DecoderLanguageModel(std::move(net), placement.device, std::move(d)));
      });
}

}  // namespace elliptical::model
