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

// The per-layer traces of several forwards as one, rows in forward order.
static std::vector<LayerTrace> ConcatTraces(const std::vector<std::vector<LayerTrace>>& parts) {
  if (parts.size() == 1) return parts.front();
  std::vector<LayerTrace> out(parts.front().size());
  for (size_t layer = 0; layer < out.size(); ++layer) {
    std::vector<torch::Tensor> metric, cosine;
    for (const auto& part : parts) {
      if (part[layer].metric.defined()) metric.push_back(part[layer].metric);
      cosine.push_back(part[layer].token_cosine);
    }
    if (!metric.empty()) out[layer].metric = torch::cat(metric, 0);
    out[layer].token_cosine = torch::cat(cosine, 0);
  }
  return out;
}

LinearDecoderImpl::LinearDecoderImpl(int embed_dim, int num_classes) {
  head = register_module("head", torch::nn::Linear(embed_dim, num_classes));
}

torch::Tensor LinearDecoderImpl::forward(const torch::Tensor& patches, int64_t grid_h,
                                         int64_t grid_w) {
  // float32 logits whatever the model's dtype (packed_linear.h, Float32Linear).
  torch::Tensor logits = Float32Linear(patches, head->weight, head->bias);  // (B, N, K)
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
  // From here on float32 whatever the model's dtype (no-ops in float32): the projections, the
  // L2 normalisation, the class scores and their LayerNorm are the logits (packed_linear.h).
  const torch::Tensor xf = x.to(torch::kFloat32);
  torch::Tensor patch_feat = torch::matmul(xf.narrow(1, 0, n), proj_patch.to(torch::kFloat32));
  torch::Tensor class_feat = torch::matmul(xf.narrow(1, n, num_classes_), proj_classes.to(torch::kFloat32));
  patch_feat = patch_feat / patch_feat.norm(2, -1, /*keepdim=*/true);
  class_feat = class_feat / class_feat.norm(2, -1, /*keepdim=*/true);
  torch::Tensor scores = torch::matmul(patch_feat, class_feat.transpose(1, 2));
  torch::Tensor masks = F::layer_norm(scores, F::LayerNormFuncOptions({num_classes_})
                                                  .weight(mask_norm->weight.to(torch::kFloat32))
                                                  .bias(mask_norm->bias.to(torch::kFloat32))
                                                  .eps(mask_norm->options.eps()));
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

torch::Tensor SegmenterNetImpl::SegmentImage(const torch::Tensor& images, std::vector<LayerTrace>* trace,
                                             const StopCheck& stop) {
  const int64_t b = images.size(0), h = images.size(2), w = images.size(3);
  const int64_t win_h = std::min<int64_t>(config_.window_size, h);
  const int64_t win_w = std::min<int64_t>(config_.window_size, w);
  const std::vector<int64_t> rows = WindowStarts(h, win_h, config_.window_stride);
  const std::vector<int64_t> cols = WindowStarts(w, win_w, config_.window_stride);
  if (ShouldStop(stop)) return torch::Tensor();
  if (rows.size() == 1 && cols.size() == 1) return forward(images, trace).to(torch::kFloat32);

  std::vector<std::pair<int64_t, int64_t>> starts;
  for (int64_t r : rows) {
    for (int64_t c : cols) starts.emplace_back(r, c);
  }
  // Windows of one shape run as batches of at most kMaxWindowRowsPerForward rows (window i of
  // image j is row i * b + j): one forward's activations stay bounded whatever the image size,
  // and a request nobody waits for stops after the group in progress.
  const size_t group = static_cast<size_t>(std::max<int64_t>(1, kMaxWindowRowsPerForward / b));
  torch::Tensor sum, count;
  std::vector<std::vector<LayerTrace>> traces;
  for (size_t first = 0; first < starts.size(); first += group) {
    if (first > 0 && ShouldStop(stop)) return torch::Tensor();
    const size_t last = std::min(starts.size(), first + group);
    std::vector<torch::Tensor> windows;
    for (size_t i = first; i < last; ++i) {
      const auto [r, c] = starts[i];
      windows.push_back(images.index({Slice(), Slice(), Slice(r, r + win_h), Slice(c, c + win_w)}));
    }
    if (trace) traces.emplace_back();
    torch::Tensor logits = forward(torch::cat(windows, 0), trace ? &traces.back() : nullptr).to(torch::kFloat32);
    if (!sum.defined()) {
      sum = torch::zeros({b, logits.size(1), h, w}, logits.options());
      count = torch::zeros({1, 1, h, w}, logits.options());
    }
    for (size_t i = first; i < last; ++i) {
      const auto [r, c] = starts[i];
      auto region = std::initializer_list<torch::indexing::TensorIndex>{
          Slice(), Slice(), Slice(r, r + win_h), Slice(c, c + win_w)};
      sum.index(region).add_(logits.narrow(0, static_cast<int64_t>(i - first) * b, b));
      count.index(region).add_(1.0);
    }
  }
  if (trace) *trace = ConcatTraces(traces);
  return sum / count;
}

}  // namespace elliptical::model
