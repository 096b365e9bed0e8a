#include "model/nets/elliptical_attention.h"

namespace elliptical::model {

torch::Tensor EllipticalMetric(const torch::Tensor& v, const torch::Tensor& v_prev,
                               const std::optional<torch::Tensor>& token_mask,
                               MetricEstimator estimator, double delta) {
  // float32 whatever the model's precision: the mean of small differences loses most of its
  // bits in half precision, and this is O(N*d) work.
  torch::Tensor diff = v.to(torch::kFloat32) - v_prev.to(torch::kFloat32);
  torch::Tensor m;  // (B, H, D)
  if (estimator == MetricEstimator::kMean && !token_mask) {
    // The common (unpadded) case, in as few kernels as possible: max-scaling cancels the
    // constant factor 1/(N * delta) of the mean, so the plain sum gives the same m. (An L1-norm
    // reduction measured twice as slow as abs + sum on the CPU.)
    return MaxScale(diff.abs_().sum(2));
  }
  diff = diff.abs_() / delta;
  if (estimator == MetricEstimator::kMean) {
    if (token_mask) {
      torch::Tensor mask = token_mask->to(torch::kFloat32).unsqueeze(1).unsqueeze(-1);  // (B,1,N,1)
      torch::Tensor count = mask.sum(2).clamp_min(1.0);                                 // (B,1,1)
      m = (diff * mask).sum(2) / count;
    } else {
      m = diff.mean(2);
    }
  } else {
    if (token_mask) {
      torch::Tensor pad = token_mask->logical_not().unsqueeze(1).unsqueeze(-1);  // (B,1,N,1)
      m = std::get<0>(diff.masked_fill(pad, NAN).nanmedian(2));
      m = torch::nan_to_num(m, 0.0);  // a sample with no real token: all zero, guarded below
    } else {
      m = std::get<0>(diff.median(2));
    }
  }
  return MaxScale(m);
}

torch::Tensor MaxScale(const torch::Tensor& m) {
  torch::Tensor max = m.amax(-1, /*keepdim=*/true);
  // 0/0 gives NaN exactly where the guard applies; masked_fill replaces it with 1.
  return (m / max).masked_fill_(max == 0, 1.0);
}

torch::Tensor PrefixEllipticalMetric(const torch::Tensor& v, const torch::Tensor& v_prev,
                                     const torch::Tensor& token_mask, double delta,
                                     torch::Tensor* running_sum) {
  torch::Tensor diff = (v.to(torch::kFloat32) - v_prev.to(torch::kFloat32)).abs_() / delta;
  torch::Tensor count;  // (B, 1, N, 1): real tokens among 0..t
  if (token_mask.defined()) {
    torch::Tensor mask = token_mask.to(torch::kFloat32).unsqueeze(1).unsqueeze(-1);
    diff = diff * mask;
    count = mask.cumsum(2);
  } else {
    count = torch::arange(1, v.size(2) + 1, diff.options()).view({1, 1, -1, 1});
  }
  torch::Tensor sum = diff.cumsum(2);
  if (running_sum) *running_sum = sum.select(2, v.size(2) - 1);
  return MaxScale(sum / count.clamp_min(1.0));
}

SelfAttentionImpl::SelfAttentionImpl(int embed_dim, int num_heads, bool qkv_bias)
    : num_heads_(num_heads), head_dim_(embed_dim / num_heads) {
  qkv = register_module("qkv", PackedLinear(embed_dim, 3 * embed_dim, qkv_bias));
  proj = register_module("proj", PackedLinear(embed_dim, embed_dim));
}

SelfAttentionImpl::Output SelfAttentionImpl::forward(
    const torch::Tensor& x, const torch::Tensor& v_prev, const AttentionConfig& config,
    const std::optional<torch::Tensor>& token_mask, const std::optional<torch::Tensor>& attn_mask) {
  const int64_t B = x.size(0), N = x.size(1), C = x.size(2);
  // (B, N, 3C) -> (3, B, H, N, D)
  torch::Tensor qkv_out =
      qkv->forward(x).reshape({B, N, 3, num_heads_, head_dim_}).permute({2, 0, 3, 1, 4});
  torch::Tensor q = qkv_out[0], k = qkv_out[1], v = qkv_out[2];

  Output result;
  result.values = v;
  if (v_prev.defined()) {
    result.metric = EllipticalMetric(v, v_prev, token_mask, config.estimator, config.delta);
    // In place: q is a view into the qkv projection that nothing else reads, and keeping its
    // layout keeps the attention kernel on its fast path (a fresh q measured 2.5x the cost).
    q.mul_(result.metric.unsqueeze(2).to(q.scalar_type()));  // (B,H,1,D) over N
  }
  std::optional<torch::Tensor> mask;
  if (attn_mask) mask = *attn_mask;
  // Dot-product layers always use 1/sqrt(D); only elliptical ones take the configured c.
  const double scale = v_prev.defined() ? config.ScoreScale(head_dim_)
                                        : 1.0 / std::sqrt(static_cast<double>(head_dim_));
  torch::Tensor attended = at::scaled_dot_product_attention(q, k, v, mask, /*dropout_p=*/0.0,
                                                            /*is_causal=*/false, scale);
  // (B, H, N, D) -> (B, N, C)
  result.out = proj->forward(attended.transpose(1, 2).reshape({B, N, C}));
  return result;
}

}  // namespace elliptical::model
