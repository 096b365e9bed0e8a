// Decoder-only language model with elliptical attention, in the parameter layout of
// docs/model_formats.md ("language_model"): the paper's post-LN LM (Transformer-XL style blocks
// with absolute positions) and a pre-LN variant, with a KV cache for generation held in slots
// allocated once (LmSlots).
//
// Batches are right-padded: `lengths[b]` tokens of row b are real. Padding is masked out of the
// attention and out of the metric estimate, so a row's logits do not depend on its batch.
#pragma once

#include <vector>

#include <torch/torch.h>

#include "model/config/lm_config.h"
#include "model/nets/vit.h"

namespace elliptical::model {

// What decoding in prefix mode needs from the tokens seen so far, for a batch of rows: the
// output of a prefill, or views (or a gathered copy) of LmSlots for one step.
struct LmCache {
  std::vector<torch::Tensor> keys, values;  // per layer (B, H, T, Dh); row b valid below lengths[b]
  std::vector<torch::Tensor> metric_sum;    // per layer (B, H, Dh) float32; undefined if dot-product
  torch::Tensor lengths;                    // (B) int64 on the model's device
};

// The prefix-mode cache of `slots` sequences of up to max_positions tokens, allocated once so
// that decoding never grows, pads or copies it. Slot s is row s of every tensor. In segment mode
// nothing is cached and it holds no tensors. Not thread-safe: the caller serialises.
class LmSlots {
 public:
  LmSlots() = default;
  // `options`: the model's dtype and device (the metric sums are float32 whatever the dtype).
  LmSlots(const LmConfig& config, int slots, const torch::TensorOptions& options);

  // What one slot occupies: keys and values of every layer for max_positions tokens, plus the
  // metric sums of the elliptical layers; 0 in segment mode.
  static int64_t BytesPerSlot(const LmConfig& config, torch::ScalarType dtype);
  int64_t bytes() const;  // what the tensors occupy

  // Copies a prefill's cache (B rows of at most max_positions tokens) into slots first..first+B-1.
  void Write(int first, const LmCache& prefill);
  // Slots 0..n-1 as views of their first `positions` tokens: Decode writes through them.
  LmCache View(int n, int64_t positions);
  // A copy of the given slots, in that order (for a step over a subset), and the way back:
  // the step's new token at `positions` (B) and the updated metric sums.
  LmCache Gather(const torch::Tensor& slots, int64_t positions);
  void WriteStep(const torch::Tensor& slots, const LmCache& gathered, const torch::Tensor& positions);
  // Slot `from`'s first `length` tokens and its metric sums into slot `to`.
  void Move(int from, int to, int64_t length);

 private:
  std::vector<torch::Tensor> keys_, values_, metric_sum_;  // as LmCache, with B = slots
};

class LmAttentionImpl : public torch::nn::Module {
 public:
  LmAttentionImpl(const LmShape& shape);
  torch::nn::Linear q_net{nullptr}, kv_net{nullptr}, o_net{nullptr};
  torch::nn::LayerNorm layer_norm{nullptr};
};
TORCH_MODULE(LmAttention);

class LmFeedForwardImpl : public torch::nn::Module {
 public:
  LmFeedForwardImpl(const LmShape& shape);
  torch::nn::Linear fc1{nullptr}, fc2{nullptr};
  torch::nn::LayerNorm layer_norm{nullptr};
};
TORCH_MODULE(LmFeedForward);

class LmLayerImpl : public torch::nn::Module {
 public:
  explicit LmLayerImpl(const LmShape& shape);
  LmAttention attn{nullptr};
  LmFeedForward ff{nullptr};
};
TORCH_MODULE(LmLayer);

// The output layer: `out.weight` when untied (tied models use the embedding), `out.bias` when
// the config has one.
class LmOutputImpl : public torch::nn::Module {
 public:
  LmOutputImpl(const LmShape& shape, int vocab_size);
  torch::Tensor weight, bias;  // either may be undefined
};
TORCH_MODULE(LmOutput);

class DecoderLmImpl : public torch::nn::Module {
 public:
  explicit DecoderLmImpl(const LmConfig& config);

  // tokens (B, L) int64, lengths (B) int64. Returns float32 logits (B, L, V), whatever the model's dtype, for
  // every position (rows past their length hold garbage). In kPrefix mode `cache`, when given,
  // receives what Decode needs to continue every row.
  torch::Tensor forward(const torch::Tensor& tokens, const torch::Tensor& lengths, ScaleMode mode,
                        LmCache* cache = nullptr, std::vector<LayerTrace>* trace = nullptr) {
    return Head(Hidden(tokens, lengths, mode, cache, trace));
  }
  // forward without the output layer: the last block's output (B, L, C) in the model's dtype.
  // A caller that needs logits at a few positions gathers them first and calls Head: the output
  // layer is the largest matmul of a small model (V x C per position), and row by row it gives
  // the same values as forward's (each logit is one row times one weight column).
  torch::Tensor Hidden(const torch::Tensor& tokens, const torch::Tensor& lengths, ScaleMode mode,
                       LmCache* cache = nullptr, std::vector<LayerTrace>* trace = nullptr);
  // The output layer (final norm when pre-LN, then the projection): float32 logits (..., V) for
  // hidden states (..., C).
  torch::Tensor Head(const torch::Tensor& x);

  // One new token per row (B) int64, in prefix mode, at position cache->lengths[b]. The cache's
  // T must be max(lengths) + 1: the step attends over exactly those positions. Writes the new
  // keys and values into the cache tensors in place (through views into LmSlots), adds to the
  // metric sums in place and advances lengths; never allocates cache. Returns float32 logits (B, V).
  torch::Tensor Decode(const torch::Tensor& tokens, LmCache* cache,
                       std::vector<LayerTrace>* trace = nullptr);

  const LmConfig& config() const { return config_; }

 private:
  torch::Tensor Embed(const torch::Tensor& tokens, const torch::Tensor& positions);
  torch::Tensor FeedForward(LmFeedForward& ff, const torch::Tensor& x);
  double Scale(int layer) const;

  LmConfig config_;
  torch::nn::Embedding word_emb{nullptr};
  torch::nn::Embedding pos_emb{nullptr};
  torch::nn::ModuleList layers{nullptr};
  torch::nn::LayerNorm final_norm{nullptr};
  LmOutput out{nullptr};
};
TORCH_MODULE(DecoderLm);

}  // namespace elliptical::model
