#include "model/nets/vit.h"

namespace elliptical::model {

namespace F = torch::nn::functional;

torch::Tensor MeanTokenCosineSimilarity(const torch::Tensor& x, const torch::Tensor& token_mask) {
  torch::Tensor unit = F::normalize(x.to(torch::kFloat32), F::NormalizeFuncOptions().dim(-1));
  torch::Tensor n;  // (B,) tokens counted
  if (token_mask.defined()) {
    unit = unit * token_mask.unsqueeze(-1).to(torch::kFloat32);
    n = token_mask.sum(1).to(torch::kFloat32);
  } else {
    n = torch::full({x.size(0)}, static_cast<double>(x.size(1)), unit.options());
  }
  torch::Tensor total = unit.sum(1);  // (B, C)
  torch::Tensor pairs = n * (n - 1);
  // A single token is trivially "collapsed": report 1 rather than 0/0.
  return torch::where(pairs > 0, ((total * total).sum(-1) - n) / pairs.clamp_min(1.0),
                      torch::ones_like(n));
}

MlpImpl::MlpImpl(int in_dim, int hidden_dim) {
  fc1 = register_module("fc1", PackedLinear(in_dim, hidden_dim));
  fc2 = register_module("fc2", PackedLinear(hidden_dim, in_dim));
}

torch::Tensor MlpImpl::forward(const torch::Tensor& x) {
  return fc2->forward(fc1->forward(x, /*gelu=*/true));  // exact (erf) GELU, as timm's nn.GELU
}

BlockImpl::BlockImpl(const ViTConfig& c) {
  auto ln = torch::nn::LayerNormOptions({c.embed_dim}).eps(c.layer_norm_eps);
  norm1 = register_module("norm1", torch::nn::LayerNorm(ln));
  attn = register_module("attn", SelfAttention(c.embed_dim, c.num_heads, c.qkv_bias));
  norm2 = register_module("norm2", torch::nn::LayerNorm(ln));
  mlp = register_module("mlp", Mlp(c.embed_dim, c.mlp_hidden_dim()));
}

torch::Tensor BlockImpl::forward(const torch::Tensor& x, const torch::Tensor& v_prev,
                                 const AttentionConfig& attention, torch::Tensor* values,
                                 torch::Tensor* metric) {
  SelfAttentionImpl::Output a = attn->forward(norm1->forward(x), v_prev, attention);
  *values = a.values;
  *metric = a.metric;
  torch::Tensor h = x + a.out;
  return h + mlp->forward(norm2->forward(h));
}

PatchEmbedImpl::PatchEmbedImpl(const ViTConfig& c) : patch_size_(c.patch_size) {
  proj = register_module(
      "proj", torch::nn::Conv2d(torch::nn::Conv2dOptions(c.in_channels, c.embed_dim, c.patch_size)
                                    .stride(c.patch_size)));
}

torch::Tensor PatchEmbedImpl::forward(const torch::Tensor& images) {
  if (as_linear_ && as_linear_->packed() && images.scalar_type() == torch::kBFloat16 &&
      images.device().is_cpu() && images.size(2) % patch_size_ == 0 && images.size(3) % patch_size_ == 0) {
    const int64_t B = images.size(0), ch = images.size(1), P = patch_size_;
    const int64_t gh = images.size(2) / P, gw = images.size(3) / P;
    // (B, ch, gh*P, gw*P) -> (B, gh*gw, ch*P*P), each patch in the conv weight's (ch, P, P) order.
    torch::Tensor patches = images.reshape({B, ch, gh, P, gw, P})
                                .permute({0, 2, 4, 1, 3, 5})
                                .reshape({B, gh * gw, ch * P * P});
    return as_linear_->forward(patches);
  }
  return proj->forward(images).flatten(2).transpose(1, 2);  // (B, C, G, G) -> (B, G*G, C)
}

bool PatchEmbedImpl::Pack(int64_t rows) {
  const torch::Tensor& w = proj->weight;  // (C, ch, P, P)
  if (!w.device().is_cpu() || w.scalar_type() != torch::kBFloat16) return false;
  PackedLinear linear(w.size(1) * w.size(2) * w.size(3), w.size(0), proj->bias.defined());
  linear->to(w.scalar_type());
  {
    torch::NoGradGuard no_grad;
    linear->weight.copy_(w.reshape({w.size(0), -1}));
    if (proj->bias.defined()) linear->bias.copy_(proj->bias);
  }
  if (!linear->Pack(rows)) return false;
  as_linear_ = linear;
  return true;
}

VisionTransformerImpl::VisionTransformerImpl(const ViTConfig& config, AttentionConfig attention,
                                             int num_classes)
    : config_(config), attention_(std::move(attention)) {
  patch_embed = register_module("patch_embed", PatchEmbed(config));
  cls_token = register_parameter("cls_token", torch::zeros({1, 1, config.embed_dim}));
  pos_embed =
      register_parameter("pos_embed", torch::zeros({1, 1 + config.num_patches(), config.embed_dim}));
  blocks = register_module("blocks", torch::nn::ModuleList());
  for (int i = 0; i < config.depth; ++i) blocks->push_back(Block(config));
  norm = register_module(
      "norm", torch::nn::LayerNorm(
                  torch::nn::LayerNormOptions({config.embed_dim}).eps(config.layer_norm_eps)));
  if (num_classes > 0) head = register_module("head", PackedLinear(config.embed_dim, num_classes));
}

torch::Tensor VisionTransformerImpl::PositionEmbedding(int64_t grid_h, int64_t grid_w) const {
  const int64_t g = config_.grid_size();
  if (grid_h == g && grid_w == g) return pos_embed;
  const int64_t c = config_.embed_dim;
  torch::Tensor grid = pos_embed.narrow(1, 1, g * g).reshape({1, g, g, c}).permute({0, 3, 1, 2});
  // Interpolate in float32: bilinear weights in half precision drift visibly on big grids.
  grid = F::interpolate(grid.to(torch::kFloat32),
                        F::InterpolateFuncOptions()
                            .size(std::vector<int64_t>{grid_h, grid_w})
                            .mode(torch::kBilinear)
                            .align_corners(false))
             .to(pos_embed.scalar_type());
  grid = grid.permute({0, 2, 3, 1}).reshape({1, grid_h * grid_w, c});
  return torch::cat({pos_embed.narrow(1, 0, 1), grid}, 1);
}

torch::Tensor VisionTransformerImpl::ForwardFeatures(const torch::Tensor& images,
                                                     std::vector<LayerTrace>* trace) {
  const int64_t p = config_.patch_size;
  torch::Tensor x = patch_embed->forward(images);  // (B, P, C)
  x = torch::cat({cls_token.expand({x.size(0), -1, -1}), x}, 1) +
      PositionEmbedding(images.size(2) / p, images.size(3) / p);  // (B, 1+P, C)
  torch::Tensor values;  // previous block's attention values (B, H, N, D)
  for (int i = 0; i < config_.depth; ++i) {
    const torch::Tensor v_prev = attention_.IsElliptical(i) ? values : torch::Tensor();
    torch::Tensor metric;
    x = blocks[i]->as<Block>()->forward(x, v_prev, attention_, &values, &metric);
    if (trace) trace->push_back({metric, MeanTokenCosineSimilarity(x)});
  }
  return norm->forward(x);
}

torch::Tensor VisionTransformerImpl::forward(const torch::Tensor& images,
                                             std::vector<LayerTrace>* trace) {
  torch::Tensor features = ForwardFeatures(images, trace);
  // The class token's logits, in float32 whatever the model's dtype (packed_linear.h).
  return head->ForwardFloat32(features.select(1, 0));
}

}  // namespace elliptical::model
