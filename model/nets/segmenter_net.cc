#include "model/nets/segmenter_net.h"

namespace elliptical::model {

namespace F = torch::nn::functional;
using torch::indexing::Slice;

std::vector<int64_t> WindowStarts(int64_t size, int64_t window, int64_t stride) {
  std::vector<int64_t> starts;
  for (int64_t start = 0; start + window < size; start += stride) starts.push_back(start);
  if (starts.empty() || starts.back() != size - window) starts.push_back(size - window);
  return starts;
}

LinearDecoderImpl::LinearDecoderImpl(int embed_dim, int num_classes) {
  head = register_module("head", torch::nn::Linear(embed_dim, num_classes));
}

torch::Tensor LinearDecoderImpl::forward(const torch::Tensor& patches, int64_t grid_h,
                                         int64_t grid_w) {
  torch::Tensor logits = head->forward(patches);  // (B, N, K)
  return logits.transpose(1, 2).reshape({patches.size(0), -1, grid_h, grid_w});
}

namespace {

ViTConfig DecoderBlockShape(const MaskTransformerConfig& c) {
  ViTConfig shape;
  shape.embed_dim = c.embed_dim;
  shape.num_heads = c.num_heads;
  shape.mlp_ratio = c.mlp_ratio;
  shape.layer_norm_eps = c.layer_norm_eps;
  shape.qkv_bias = true;
  return shape;
}

}  // namespace

MaskTransformerImpl::MaskTransformerImpl(const MaskTransformerConfig& c, int encoder_dim,
                                         int num_classes)
    : num_classes_(num_classes) {
  dot_product_.mode = AttentionMode::kDotProduct;
  const ViTConfig shape = DecoderBlockShape(c);
  blocks = register_module("blocks", torch::nn::ModuleList());
  for (int i = 0; i < c.depth; ++i) blocks->push_back(Block(shape));
  cls_emb = register_parameter("cls_emb", torch::zeros({1, num_classes, c.embed_dim}));
  proj_dec = register_module("proj_dec", torch::nn::Linear(encoder_dim, c.embed_dim));
  proj_patch = register_parameter("proj_patch", torch::zeros({c.embed_dim, c.embed_dim}));
  proj_classes = register_parameter("proj_classes", torch::zeros({c.embed_dim, c.embed_dim}));
  decoder_norm = register_module(
      "decoder_norm",
      torch::nn::LayerNorm(torch::nn::LayerNormOptions({c.embed_dim}).eps(c.layer_norm_eps)));
  mask_norm = register_module(
      "mask_norm",
      torch::nn::LayerNorm(torch::nn::LayerNormOptions({num_classes}).eps(c.layer_norm_eps)));
}

torch::Tensor MaskTransformerImpl::forward(const torch::Tensor& patches, int64_t grid_h,
                                           int64_t grid_w) {
  const int64_t b = patches.size(0), n = patches.size(1);
  torch::Tensor x = torch::cat({proj_dec->forward(patches), cls_emb.expand({b, -1, -1})}, 1);
  torch::Tensor values, metric;  // unused: the decoder's blocks are dot-product
  for (const auto& block : *blocks) {
    x = block->as<Block>()->forward(x, torch::Tensor(), dot_product_, &values, &metric);
  }
  x = decoder_norm->forward(x);
  torch::Tensor patch_feat = torch::matmul(x.narrow(1, 0, n), proj_patch);
  torch::Tensor class_feat = torch::matmul(x.narrow(1, n, num_classes_), proj_classes);
  patch_feat = patch_feat / patch_feat.norm(2, -1, /*keepdim=*/true);
  class_feat = class_feat / class_feat.norm(2, -1, /*keepdim=*/true);
  torch::Tensor masks = mask_norm->forward(torch::matmul(patch_feat, class_feat.transpose(1, 2)));
  return masks.transpose(1, 2).reshape({b, num_classes_, grid_h, grid_w});  // (B, K, gh, gw)
}

SegmenterNetImpl::SegmenterNetImpl(const SegmenterConfig& config) : config_(config) {
  encoder = register_module("encoder",
                            VisionTransformer(config.encoder, config.attention, /*num_classes=*/0));
  if (config.decoder == SegmentationDecoder::kLinear) {
    linear_decoder = register_module(
        "decoder", LinearDecoder(config.encoder.embed_dim, config.num_classes));
  } else {
    mask_decoder = register_module(
        "decoder",
        MaskTransformer(config.mask_transformer, config.encoder.embed_dim, config.num_classes));
  }
}

torch::Tensor SegmenterNetImpl::forward(const torch::Tensor& images,
                                        std::vector<LayerTrace>* trace) {
  const int64_t h = images.size(2), w = images.size(3), p = config_.encoder.patch_size;
  const int64_t pad_h = (p - h % p) % p, pad_w = (p - w % p) % p;
  // Zero padding after normalisation, right and bottom, as the reference.
  torch::Tensor x = (pad_h || pad_w) ? F::pad(images, F::PadFuncOptions({0, pad_w, 0, pad_h}))
                                     : images;
  const int64_t grid_h = (h + pad_h) / p, grid_w = (w + pad_w) / p;
  torch::Tensor tokens = encoder->ForwardFeatures(x, trace);
  torch::Tensor patches = tokens.narrow(1, 1, grid_h * grid_w);  // drop the class token
  torch::Tensor masks = linear_decoder ? linear_decoder->forward(patches, grid_h, grid_w)
                                       : mask_decoder->forward(patches, grid_h, grid_w);
  masks = F::interpolate(masks, F::InterpolateFuncOptions()
                                    .size(std::vector<int64_t>{h + pad_h, w + pad_w})
                                    .mode(torch::kBilinear)
                                    .align_corners(false));
  return masks.index({Slice(), Slice(), Slice(0, h), Slice(0, w)});
}

torch::Tensor SegmenterNetImpl::SegmentImage(const torch::Tensor& images,
                                             std::vector<LayerTrace>* trace) {
  const int64_t b = images.size(0), h = images.size(2), w = images.size(3);
  const int64_t win_h = std::min<int64_t>(config_.window_size, h);
  const int64_t win_w = std::min<int64_t>(config_.window_size, w);
  const std::vector<int64_t> rows = WindowStarts(h, win_h, config_.window_stride);
  const std::vector<int64_t> cols = WindowStarts(w, win_w, config_.window_stride);
  if (rows.size() == 1 && cols.size() == 1) return forward(images, trace).to(torch::kFloat32);

  // Every window of every image has the same shape, so they all run as one batch: window i of
  // image j is row i * b + j.
  std::vector<torch::Tensor> windows;
  for (int64_t r : rows) {
    for (int64_t c : cols) {
      windows.push_back(images.index({Slice(), Slice(), Slice(r, r + win_h), Slice(c, c + win_w)}));
    }
  }
  torch::Tensor logits = forward(torch::cat(windows, 0), trace).to(torch::kFloat32);
  torch::Tensor sum = torch::zeros({b, logits.size(1), h, w}, logits.options());
  torch::Tensor count = torch::zeros({1, 1, h, w}, logits.options());
  int64_t i = 0;
  for (int64_t r : rows) {
    for (int64_t c : cols) {
      auto region = std::initializer_list<torch::indexing::TensorIndex>{
          Slice(), Slice(), Slice(r, r + win_h), Slice(c, c + win_w)};
      sum.index(region).add_(logits.narrow(0, i++ * b, b));
      count.index(region).add_(1.0);
    }
  }
  return sum / count;
}

}  // namespace elliptical::model
