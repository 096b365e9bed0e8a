// Elliptical attention (Nielsen et al., NeurIPS 2024), as ../shared/ELLIPTICAL.md specifies:
//
//   m[b,h,i] = mean_n |v_l[b,h,n,i] - v_{l-1}[b,h,n,i]| / delta      (over sample b's real tokens)
//   m[b,h,:] /= max_i m[b,h,i]                                       (entries in (0, 1])
//   score(q, k) = ((m * q) . k) * c
//
// m is per sample and per head: nothing is pooled across the batch, so a request's answer does
// not depend on what it is batched with. Instead of building diag(m) (d x d) we scale q element-
// wise and hand the product to the fused scaled_dot_product_attention kernel: same scores, one
// extra O(N*d) reduction beside attention's O(N^2*d).
#pragma once

#include <optional>

#include <torch/torch.h>

#include "model/config/attention_config.h"
#include "model/nets/packed_linear.h"

namespace elliptical::model {

// v, v_prev: (B, H, N, D) values of this layer and of the layer before, same heads.
// token_mask: optional (B, N) bool, true where the token is real (padding excluded from the
// estimate). Returns m as (B, H, D) in float32, max-scaled per (b, h). A head whose values did
// not move at all (every difference zero) gets m = 1, i.e. plain dot-product, instead of NaN.
torch::Tensor EllipticalMetric(const torch::Tensor& v, const torch::Tensor& v_prev,
                               const std::optional<torch::Tensor>& token_mask,
                               MetricEstimator estimator, double delta);

// Divides m (..., D) by its maximum over D; where that maximum is 0 (the values did not move),
// m becomes 1 (plain dot-product) instead of NaN.
torch::Tensor MaxScale(const torch::Tensor& m);

// The prefix ("causal") estimate used for generation with a KV cache: the query at position t
// uses the mean over the sample's real positions 0..t. v, v_prev (B, H, N, D); token_mask
// (B, N) bool or undefined. Returns m (B, H, N, D) max-scaled per position, and sets
// *running_sum to sum_{real n} |v - v_prev| / delta (B, H, D) float32, what the cache keeps.
torch::Tensor PrefixEllipticalMetric(const torch::Tensor& v, const torch::Tensor& v_prev,
                                     const torch::Tensor& token_mask, double delta,
                                     torch::Tensor* running_sum);

// Multi-head self-attention with timm's parameter names (qkv, proj). With a previous layer's
// values it scores with the elliptical metric; without, it is plain dot-product attention.
class SelfAttentionImpl : public torch::nn::Module {
 public:
  SelfAttentionImpl(int embed_dim, int num_heads, bool qkv_bias);

  struct Output {
    torch::Tensor out;     // (B, N, C)
    torch::Tensor values;  // (B, H, N, D): what the next layer compares its values with
    torch::Tensor metric;  // (B, H, D) when elliptical, undefined otherwise
  };

  // x: (B, N, C). v_prev: previous layer's values, or undefined for dot-product scoring.
  // attn_mask: optional bool mask broadcastable to (B, H, N, N), true = may attend.
  Output forward(const torch::Tensor& x, const torch::Tensor& v_prev,
                 const AttentionConfig& config,
                 const std::optional<torch::Tensor>& token_mask = std::nullopt,
                 const std::optional<torch::Tensor>& attn_mask = std::nullopt);

  PackedLinear qkv{nullptr};
  PackedLinear proj{nullptr};

 private:
  int num_heads_;
  int head_dim_;
};
TORCH_MODULE(SelfAttention);

}  // namespace elliptical::model
