#include "model/nets/decoder_lm.h"

#include <cmath>

#include "model/nets/elliptical_attention.h"
#include "model/nets/packed_linear.h"

namespace elliptical::model {

namespace F = torch::nn::functional;
using torch::indexing::Slice;

namespace {

torch::nn::LayerNormOptions Norm(const LmShape& s) {
  return torch::nn::LayerNormOptions({s.d_model}).eps(s.layer_norm_eps);
}

torch::nn::LinearOptions NoBias(int in, int out) {
  return torch::nn::LinearOptions(in, out).bias(false);
}

// (B, L, H*Dh) -> (B, H, L, Dh)
torch::Tensor SplitHeads(const torch::Tensor& x, int heads) {
  return x.view({x.size(0), x.size(1), heads, -1}).transpose(1, 2);
}

// (B, H, L, Dh) -> (B, L, H*Dh)
torch::Tensor MergeHeads(const torch::Tensor& x) {
  return x.transpose(1, 2).reshape({x.size(0), x.size(2), -1});
}

}  // namespace

LmAttentionImpl::LmAttentionImpl(const LmShape& s) {
  const int inner = s.num_heads * s.head_dim;
  q_net = register_module("q_net", torch::nn::Linear(NoBias(s.d_model, inner)));
  kv_net = register_module("kv_net", torch::nn::Linear(NoBias(s.d_model, 2 * inner)));
  o_net = register_module("o_net", torch::nn::Linear(NoBias(inner, s.d_model)));
  layer_norm = register_module("layer_norm", torch::nn::LayerNorm(Norm(s)));
}

LmFeedForwardImpl::LmFeedForwardImpl(const LmShape& s) {
  fc1 = register_module("fc1", torch::nn::Linear(s.d_model, s.d_inner));
  fc2 = register_module("fc2", torch::nn::Linear(s.d_inner, s.d_model));
  layer_norm = register_module("layer_norm", torch::nn::LayerNorm(Norm(s)));
}

LmLayerImpl::LmLayerImpl(const LmShape& s) {
  attn = register_module("attn", LmAttention(s));
  ff = register_module("ff", LmFeedForward(s));
}

LmOutputImpl::LmOutputImpl(const LmShape& s, int vocab_size) {
  if (!s.tie_embeddings) weight = register_parameter("weight", torch::zeros({vocab_size, s.d_model}));
  if (s.output_bias) bias = register_parameter("bias", torch::zeros({vocab_size}));
}

DecoderLmImpl::DecoderLmImpl(const LmConfig& config) : config_(config) {
  const LmShape& s = config.shape;
  word_emb = register_module("word_emb", torch::nn::Embedding(config.vocab_size, s.d_model));
  if (s.positions == PositionEncoding::kLearned) {
    pos_emb = register_module("pos_emb", torch::nn::Embedding(s.max_positions, s.d_model));
  }
  layers = register_module("layers", torch::nn::ModuleList());
  for (int i = 0; i < s.num_layers; ++i) layers->push_back(LmLayer(s));
  if (s.norm == NormPlacement::kPre) {
    final_norm = register_module("final_norm", torch::nn::LayerNorm(Norm(s)));
  }
  if (!s.tie_embeddings || s.output_bias) out = register_module("out", LmOutput(s, config.vocab_size));
}

double DecoderLmImpl::Scale(int layer) const {
  const int dh = config_.shape.head_dim;
  return config_.attention.IsElliptical(layer) ? config_.attention.ScoreScale(dh)
                                               : 1.0 / std::sqrt(static_cast<double>(dh));
}

torch::Tensor DecoderLmImpl::Embed(const torch::Tensor& tokens, const torch::Tensor& positions) {
  const LmShape& s = config_.shape;
  torch::Tensor x = word_emb->forward(tokens);
  if (s.embed_scale != 1.0) x = x * s.embed_scale;
  if (s.positions == PositionEncoding::kLearned) return x + pos_emb->forward(positions);
  // Sines in the first half, cosines in the second, computed in float32 for large positions.
  torch::Tensor inv_freq =
      1.0 / torch::pow(10000.0, torch::arange(0, s.d_model, 2, positions.options().dtype(torch::kFloat32)) /
                                    static_cast<double>(s.d_model));
  torch::Tensor angles = positions.to(torch::kFloat32).unsqueeze(-1) * inv_freq;
  return x + torch::cat({angles.sin(), angles.cos()}, -1).to(x.scalar_type());
}

torch::Tensor DecoderLmImpl::FeedForward(LmFeedForward& ff, const torch::Tensor& x) {
  const bool pre = config_.shape.norm == NormPlacement::kPre;
  torch::Tensor h = ff->fc1->forward(pre ? ff->layer_norm->forward(x) : x);
  h = config_.shape.activation == Activation::kRelu ? torch::relu(h) : F::gelu(h);
  h = ff->fc2->forward(h);
  return pre ? x + h : ff->layer_norm->forward(x + h);
}

torch::Tensor DecoderLmImpl::Head(const torch::Tensor& x) {
  torch::Tensor h = final_norm ? final_norm->forward(x) : x;
  const torch::Tensor& w = config_.shape.tie_embeddings ? word_emb->weight : out->weight;
  // float32 logits whatever the model's dtype (packed_linear.h, Float32Linear).
  return Float32Linear(h, w, config_.shape.output_bias ? out->bias : torch::Tensor());
}

torch::Tensor DecoderLmImpl::Hidden(const torch::Tensor& tokens, const torch::Tensor& lengths,
                                    ScaleMode mode, LmCache* cache,
                                    std::vector<LayerTrace>* trace) {
  const LmShape& s = config_.shape;
  const int64_t b = tokens.size(0), l = tokens.size(1);
  torch::Tensor steps = torch::arange(l, lengths.options()).unsqueeze(0);  // (1, L)
  torch::Tensor token_mask = steps < lengths.unsqueeze(1);                  // (B, L)
  torch::Tensor positions = s.position_order == PositionOrder::kAscending
                                ? steps.expand({b, l})
                                : (lengths.unsqueeze(1) - 1 - steps).clamp_min(0);
  // Causal, and no real query looks at padding (padding only follows the real tokens). Without
  // padding the fused kernels' own causal path is faster than an explicit mask.
  const bool padded = (lengths < l).any().item<bool>();
  std::optional<torch::Tensor> attn_mask;
  if (padded) {
    torch::Tensor causal = torch::ones({l, l}, token_mask.options()).tril();
    attn_mask = (causal.unsqueeze(0) & token_mask.unsqueeze(1)).unsqueeze(1);  // (B,1,L,L)
  }

  torch::Tensor x = Embed(tokens, positions);
  const bool pre = s.norm == NormPlacement::kPre;
  if (cache) *cache = LmCache{{}, {}, {}, lengths.clone()};
  torch::Tensor v_prev;
  for (int i = 0; i < s.num_layers; ++i) {
    LmLayerImpl& layer = *layers[i]->as<LmLayer>();
    torch::Tensor a_in = pre ? layer.attn->layer_norm->forward(x) : x;
    torch::Tensor q = SplitHeads(layer.attn->q_net->forward(a_in), s.num_heads);
    std::vector<torch::Tensor> kv = layer.attn->kv_net->forward(a_in).chunk(2, -1);
    torch::Tensor k = SplitHeads(kv[0], s.num_heads), v = SplitHeads(kv[1], s.num_heads);
    torch::Tensor metric, running_sum;
    if (config_.attention.IsElliptical(i)) {
      if (mode == ScaleMode::kSegment) {
        metric = EllipticalMetric(v, v_prev, padded ? std::optional<torch::Tensor>(token_mask) : std::nullopt,
                                  config_.attention.estimator,
                                  config_.attention.delta);  // (B, H, Dh)
        q.mul_(metric.unsqueeze(2).to(q.scalar_type()));  // in place: see SelfAttention
      } else {
        metric = PrefixEllipticalMetric(v, v_prev, padded ? token_mask : torch::Tensor(),
                                        config_.attention.delta,
                                        &running_sum);  // (B, H, L, Dh)
        q.mul_(metric.to(q.scalar_type()));
      }
    }
    torch::Tensor attended =
        at::scaled_dot_product_attention(q, k, v, attn_mask, 0.0, /*is_causal=*/!padded, Scale(i));
    torch::Tensor h = layer.attn->o_net->forward(MergeHeads(attended));
    x = pre ? x + h : layer.attn->layer_norm->forward(x + h);
    x = FeedForward(layer.ff, x);
    if (cache) {
      cache->keys.push_back(k);
      cache->values.push_back(v);
      cache->metric_sum.push_back(running_sum);
    }
    if (trace) {
      // The statistics describe the whole sequence: in prefix mode that is m at its last token.
      torch::Tensor whole = metric;
      if (metric.defined() && mode == ScaleMode::kPrefix) {
        torch::Tensor last = (lengths - 1).clamp_min(0).view({b, 1, 1, 1}).expand(
            {b, metric.size(1), 1, metric.size(3)});
        whole = metric.gather(2, last).squeeze(2);
      }
      trace->push_back({whole, MeanTokenCosineSimilarity(x, token_mask)});
    }
    v_prev = v;
  }
  return x;
}

torch::Tensor DecoderLmImpl::Decode(const torch::Tensor& tokens, LmCache* cache,
                                    std::vector<LayerTrace>* trace) {
  const LmShape& s = config_.shape;
  const int64_t b = tokens.size(0);
  torch::Tensor pos = cache->lengths;  // where the new token goes, per row
  torch::Tensor rows = torch::arange(b, pos.options());
  const int64_t positions = cache->keys.front().size(2);
  torch::Tensor key_mask = (torch::arange(positions, pos.options()).unsqueeze(0) <= pos.unsqueeze(1))
                               .view({b, 1, 1, positions});

  torch::Tensor x = Embed(tokens.unsqueeze(1), pos.unsqueeze(1));  // (B, 1, C)
  const bool pre = s.norm == NormPlacement::kPre;
  torch::Tensor v_prev;
  for (int i = 0; i < s.num_layers; ++i) {
    LmLayerImpl& layer = *layers[i]->as<LmLayer>();
    torch::Tensor a_in = pre ? layer.attn->layer_norm->forward(x) : x;
    torch::Tensor q = SplitHeads(layer.attn->q_net->forward(a_in), s.num_heads);  // (B,H,1,Dh)
    std::vector<torch::Tensor> kv = layer.attn->kv_net->forward(a_in).chunk(2, -1);
    torch::Tensor k = SplitHeads(kv[0], s.num_heads), v = SplitHeads(kv[1], s.num_heads);
    torch::Tensor metric;
    if (config_.attention.IsElliptical(i)) {
      torch::Tensor diff =
          (v.to(torch::kFloat32) - v_prev.to(torch::kFloat32)).abs_().squeeze(2) /
          config_.attention.delta;  // (B, H, Dh)
      torch::Tensor& sum = cache->metric_sum[i];
      sum.add_(diff);
      metric = MaxScale(sum / (pos + 1).to(torch::kFloat32).view({b, 1, 1}));
      q.mul_(metric.unsqueeze(2).to(q.scalar_type()));
    }
    torch::Tensor& keys = cache->keys[i];
    torch::Tensor& values = cache->values[i];
    keys.index_put_({rows, Slice(), pos}, k.squeeze(2));
    values.index_put_({rows, Slice(), pos}, v.squeeze(2));
    torch::Tensor attended =
        at::scaled_dot_product_attention(q, keys, values, key_mask, 0.0, false, Scale(i));
    torch::Tensor h = layer.attn->o_net->forward(MergeHeads(attended));
    x = pre ? x + h : layer.attn->layer_norm->forward(x + h);
    x = FeedForward(layer.ff, x);
    if (trace) trace->push_back({metric, torch::ones({b}, x.options().dtype(torch::kFloat32))});
    v_prev = v;
  }
  cache->lengths = pos + 1;
  return Head(x).squeeze(1);
}

LmSlots::LmSlots(const LmConfig& config, int slots, const torch::TensorOptions& options) {
  if (config.scale_mode == ScaleMode::kSegment) return;
  const LmShape& s = config.shape;
  // Zeros, not empty: masked positions still enter the attention kernel, and 0 * NaN is NaN.
  for (int i = 0; i < s.num_layers; ++i) {
    keys_.push_back(torch::zeros({slots, s.num_heads, s.max_positions, s.head_dim}, options));
    values_.push_back(torch::zeros({slots, s.num_heads, s.max_positions, s.head_dim}, options));
    metric_sum_.push_back(config.attention.IsElliptical(i)
                              ? torch::zeros({slots, s.num_heads, s.head_dim}, options.dtype(torch::kFloat32))
                              : torch::Tensor());
  }
}

int64_t LmSlots::BytesPerSlot(const LmConfig& config, torch::ScalarType dtype) {
  if (config.scale_mode == ScaleMode::kSegment) return 0;
  const LmShape& s = config.shape;
  int64_t elliptical = 0;
  for (int i = 0; i < s.num_layers; ++i) elliptical += config.attention.IsElliptical(i);
  const int64_t head = static_cast<int64_t>(s.num_heads) * s.head_dim;
  return 2 * s.num_layers * head * s.max_positions * static_cast<int64_t>(c10::elementSize(dtype)) +
         elliptical * head * static_cast<int64_t>(sizeof(float));
}

int64_t LmSlots::bytes() const {
  int64_t total = 0;
  for (const auto* list : {&keys_, &values_, &metric_sum_}) {
    for (const torch::Tensor& t : *list) {
      if (t.defined()) total += t.numel() * static_cast<int64_t>(t.element_size());
    }
  }
  return total;
}

void LmSlots::Write(int first, const LmCache& prefill) {
  for (size_t l = 0; l < keys_.size(); ++l) {
    const int64_t b = prefill.keys[l].size(0), n = prefill.keys[l].size(2);
    // Whole rows at once, padding included: positions past a row's length are masked until the
    // step that writes them.
    keys_[l].narrow(0, first, b).narrow(2, 0, n).copy_(prefill.keys[l]);
    values_[l].narrow(0, first, b).narrow(2, 0, n).copy_(prefill.values[l]);
    if (metric_sum_[l].defined()) metric_sum_[l].narrow(0, first, b).copy_(prefill.metric_sum[l]);
  }
}

LmCache LmSlots::View(int n, int64_t positions) {
  LmCache view;
  for (size_t l = 0; l < keys_.size(); ++l) {
    view.keys.push_back(keys_[l].narrow(0, 0, n).narrow(2, 0, positions));
    view.values.push_back(values_[l].narrow(0, 0, n).narrow(2, 0, positions));
    view.metric_sum.push_back(metric_sum_[l].defined() ? metric_sum_[l].narrow(0, 0, n) : torch::Tensor());
  }
  return view;
}

LmCache LmSlots::Gather(const torch::Tensor& slots, int64_t positions) {
  LmCache copy;
  for (size_t l = 0; l < keys_.size(); ++l) {
    copy.keys.push_back(keys_[l].narrow(2, 0, positions).index_select(0, slots));
    copy.values.push_back(values_[l].narrow(2, 0, positions).index_select(0, slots));
    copy.metric_sum.push_back(metric_sum_[l].defined() ? metric_sum_[l].index_select(0, slots)
                                                       : torch::Tensor());
  }
  return copy;
}

void LmSlots::WriteStep(const torch::Tensor& slots, const LmCache& gathered, const torch::Tensor& positions) {
  torch::Tensor rows = torch::arange(slots.size(0), slots.options());
  for (size_t l = 0; l < keys_.size(); ++l) {
    keys_[l].index_put_({slots, Slice(), positions}, gathered.keys[l].index({rows, Slice(), positions}));
    values_[l].index_put_({slots, Slice(), positions}, gathered.values[l].index({rows, Slice(), positions}));
    if (metric_sum_[l].defined()) metric_sum_[l].index_copy_(0, slots, gathered.metric_sum[l]);
  }
}

void LmSlots::Move(int from, int to, int64_t length) {
  for (size_t l = 0; l < keys_.size(); ++l) {
    keys_[l][to].narrow(1, 0, length).copy_(keys_[l][from].narrow(1, 0, length));
    values_[l][to].narrow(1, 0, length).copy_(values_[l][from].narrow(1, 0, length));
    if (metric_sum_[l].defined()) metric_sum_[l][to].copy_(metric_sum_[l][from]);
  }
}

}  // namespace elliptical::model
