// A decoder-only language model loaded from a model directory; free of LibTorch like
// image_classifier.h. Works on token ids: tokenization belongs to the caller.
//
// Generation is sequence-level so that a scheduler can batch at every step: Prefill starts
// sequences (one batch, prompts of any lengths), Step advances any set of live sequences by one
// token each, whatever batch they were started in.
//
// The KV cache is allocated once (AllocateCache) as a fixed number of slots of max_positions
// tokens; every live sequence holds one slot until it is destroyed. Decoding writes each new
// token into its slot in place, so the cache never grows and a step copies none of it.
//
// Thread-safety: calls may come from several threads (cache work is serialised inside), but one
// Sequence must not be used by two calls at once.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "model/api/attention_stats.h"
#include "model/api/image_classifier.h"
#include "model/config/lm_config.h"
#include "model/api/model_description.h"

namespace elliptical::model {

struct CacheOptions {
  int64_t max_bytes = 512LL << 20;  // budget for keys, values and the metric sums of every slot
  int max_sequences = 16;           // most slots wanted; fewer if the budget holds fewer
};

struct CacheUsage {
  int slots = 0;                // allocated
  int slots_used = 0;           // held by live sequences
  int slot_tokens = 0;          // tokens one slot holds (the model's max_positions)
  int64_t bytes_allocated = 0;  // what the cache tensors really occupy
  int64_t bytes_used = 0;       // tokens held by live sequences x bytes per token
};

class LanguageModel {
 public:
  // One sequence's state: its tokens and its cache slot (in prefix mode its keys, values and
  // metric sums). Destroying it gives the slot back; it may outlive its LanguageModel.
  class Sequence {
   public:
    virtual ~Sequence() = default;
    virtual int length() const = 0;
    // Bytes of its slot in use: length() tokens plus the metric sums.
    virtual int64_t cache_bytes() const = 0;
  };

  using Logits = std::vector<float>;  // one score per vocabulary entry

  // Asks a Prefill to also score some of its prompts: log p(token_t | tokens_<t) for every
  // position t >= 1 of the prompt, the float32 log-softmax of the logits at t-1 gathered at
  // token t. Those logits come from the prefill's own forward over the whole prompt, so the
  // scores are exactly what a full forward over the prompt alone gives, in the model's scale
  // mode (prefix: m at t-1 from positions 0..t-1; segment: m from the whole prompt, as the
  // reference computes it; dot-product layers have no m), up to the float32 summation order of
  // the batch. Only the prompts asked for pay for it (a log-sum-exp over their logits).
  struct PromptScoring {
    std::vector<bool> wanted;  // one flag per prompt; missing flags count as false
    // Written by a Prefill that succeeds: one entry per prompt, prompt.size() - 1 values for a
    // wanted one (entry j scores token j + 1; none for a one-token prompt), empty otherwise.
    std::vector<std::vector<float>> logprobs;
  };

  // Asks a Prefill or Step to pick some rows' next token on the model's device: for those rows
  // only the token and its logprob come back (all rows' together, in one small copy) instead
  // of the whole vocabulary's logits. The pick is server/generation/sampler.cc's Sample()
  // without penalties, logit_bias or top_logprobs (rows that need them ask for logits), and
  // gives the same token for the same u (model/nets/token_draw.h says how exactly).
  struct DeviceDraw {
    bool wanted = false;     // false: this row's logits come back as usual
    float temperature = 0;   // 0: greedy
    int top_k = 0;           // 0 or less: every token
    float top_p = 0;         // 0 or >= 1: no nucleus filter
    // Uniform in [0, 1): std::generate_canonical<double, 53> of the request's own engine, drawn
    // on the host so that a seeded request's tokens do not depend on its batch. Unused when
    // greedy, and when a single candidate is left (DrawnToken::used_uniform).
    double u = 0;
  };
  struct DrawnToken {
    int32_t id = 0;
    float logprob = 0;  // under the distribution it was drawn from, as Sample() reports it
    // False when std::discrete_distribution would have drawn nothing (greedy, or one candidate
    // left): the caller then leaves its engine as it was before drawing u.
    bool used_uniform = false;
  };
  struct DeviceSampling {
    std::vector<DeviceDraw> rows;  // one per prompt or sequence; missing rows count as not wanted
    // Written by a call that succeeds: one entry per prompt or sequence, set for wanted rows
    // (whose Logits come back empty).
    std::vector<DrawnToken> drawn;

    bool wants(size_t row) const { return row < rows.size() && rows[row].wanted; }
  };

  static absl::StatusOr<std::unique_ptr<LanguageModel>> Load(const std::string& directory,
                                                             const LoadOptions& options);
  virtual ~LanguageModel() = default;

  // Allocates the cache once: slots = min(max_sequences, max_bytes / bytes per slot). In segment
  // mode nothing is cached (bytes per slot is 0) and slots only bound the live sequences.
  // INVALID_ARGUMENT (saying how many bytes one slot needs) when not even one slot fits,
  // FAILED_PRECONDITION when called twice, RESOURCE_EXHAUSTED when the device refuses the memory.
  virtual absl::Status AllocateCache(const CacheOptions& options) = 0;
  virtual CacheUsage cache_usage() const = 0;  // thread-safe, never waits for a step
  virtual int free_slots() const = 0;          // thread-safe, never waits for a step

  // Runs the prompts (each non-empty) as one batch, each into a free slot. Returns each prompt's
  // next-token logits and replaces `sequences` with one state per prompt. With `stats`, also
  // each prompt's per-layer attention statistics (m as the estimate at the prompt's last token).
  // With `scoring`, also the scores of the prompts it asks for (PromptScoring); with
  // `sampling`, drawn tokens instead of logits for the rows it asks for (DeviceSampling).
  // RESOURCE_EXHAUSTED, changing nothing, when fewer slots are free than prompts (or no cache
  // was allocated): retry once sequences have been released.
  virtual absl::StatusOr<std::vector<Logits>> Prefill(
      absl::Span<const std::vector<int32_t>> prompts,
      std::vector<std::unique_ptr<Sequence>>* sequences,
      std::vector<std::vector<LayerStats>>* stats = nullptr,
      PromptScoring* scoring = nullptr, DeviceSampling* sampling = nullptr) = 0;

  // Appends tokens[i] to sequences[i] (distinct, from this model) and returns each one's
  // next-token logits. Cheapest when the sequences are all the live ones (in any order); a subset
  // gathers a copy of its slots. A step that fails leaves its sequences unusable (INTERNAL).
  // With `sampling`, the rows it asks for come back as drawn tokens (DeviceSampling).
  virtual absl::StatusOr<std::vector<Logits>> Step(absl::Span<Sequence* const> sequences,
                                                   absl::Span<const int32_t> tokens,
                                                   DeviceSampling* sampling = nullptr) = 0;

  // Whether callers should draw tokens on the device (config.json "sample_on_device"; "auto":
  // on for a CUDA model, where a step's whole-vocabulary copy to the host costs more than the
  // step, off on the CPU, where the logits are already in host memory). Either way the model
  // honours a DeviceSampling it is given.
  virtual bool samples_on_device() const { return false; }

  // Log-probability of each token given the ones before it (tokens.size() - 1 values), with m
  // estimated as `mode` says: for perplexity and for comparing the two modes. Computed as
  // PromptScoring's are, from a forward over `tokens` alone; needs no cache slot.
  virtual absl::StatusOr<std::vector<float>> TokenLogProbs(absl::Span<const int32_t> tokens,
                                                           ScaleMode mode) = 0;

  // Device memory one token of one sequence holds in the cache (keys and values of every
  // layer, counted in segment mode too although nothing is cached there).
  virtual int64_t CacheBytesPerToken() const = 0;

  virtual const ModelDescription& description() const = 0;
  virtual const LmConfig& config() const = 0;
};

}  // namespace elliptical::model
