// A decoder-only language model loaded from a model directory; free of LibTorch like
// image_classifier.h. Works on token ids: tokenization belongs to the caller.
//
// Generation is sequence-level so that a scheduler can batch at every step: Prefill starts
// sequences (one batch, prompts of any lengths), Step advances any set of live sequences by one
// token each, whatever batch they were started in.
//
// Thread-safety: calls may come from several threads, but one Sequence must not be used by
// two calls at once.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "model/attention_stats.h"
#include "model/image_classifier.h"
#include "model/lm_config.h"
#include "model/model_description.h"

namespace elliptical::model {

class LanguageModel {
 public:
  // One sequence's state: its tokens and, in prefix mode, its KV cache and metric sums.
  class Sequence {
   public:
    virtual ~Sequence() = default;
    virtual int length() const = 0;
    // Bytes of device memory its cache holds.
    virtual int64_t cache_bytes() const = 0;
  };

  using Logits = std::vector<float>;  // one score per vocabulary entry

  static absl::StatusOr<std::unique_ptr<LanguageModel>> Load(const std::string& directory,
                                                             const LoadOptions& options);
  virtual ~LanguageModel() = default;

  // Runs the prompts (each non-empty) as one batch. Returns each prompt's next-token logits and
  // fills `sequences` with one state per prompt. With `stats`, also each prompt's per-layer
  // attention statistics (m as the estimate at the prompt's last token).
  virtual absl::StatusOr<std::vector<Logits>> Prefill(
      absl::Span<const std::vector<int32_t>> prompts,
      std::vector<std::unique_ptr<Sequence>>* sequences,
      std::vector<std::vector<LayerStats>>* stats = nullptr) = 0;

  // Appends tokens[i] to sequences[i] and returns each one's next-token logits.
  virtual absl::StatusOr<std::vector<Logits>> Step(absl::Span<Sequence* const> sequences,
                                                   absl::Span<const int32_t> tokens) = 0;

  // Log-probability of each token given the ones before it (tokens.size() - 1 values), with m
  // estimated as `mode` says: for perplexity and for comparing the two modes.
  virtual absl::StatusOr<std::vector<float>> TokenLogProbs(absl::Span<const int32_t> tokens,
                                                           ScaleMode mode) = 0;

  // Device memory one token of one sequence holds in the cache (keys and values of every
  // layer): what a scheduler reserves per token to bound the cache.
  virtual int64_t CacheBytesPerToken() const = 0;

  virtual const ModelDescription& description() const = 0;
  virtual const LmConfig& config() const = 0;
};

}  // namespace elliptical::model
