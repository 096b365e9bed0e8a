// Segmenter (Strudel et al., 2021) with an elliptical ViT encoder, in the paper's parameter
// layout (docs/model_formats.md, "segmenter"): `encoder.*` is a ViT without head, `decoder.*`
// a linear per-patch classifier or the mask transformer.
#pragma once

#include <vector>

#include <torch/torch.h>

#include "model/config/segmenter_config.h"
#include "model/api/stop_check.h"
#include "model/nets/vit.h"

namespace elliptical::model {

// Per-patch linear classifier: (B, N, C) -> (B, K, gh, gw).
class LinearDecoderImpl : public torch::nn::Module {
 public:
  LinearDecoderImpl(int embed_dim, int num_classes);
  torch::Tensor forward(const torch::Tensor& patches, int64_t grid_h, int64_t grid_w);
  torch::nn::Linear head{nullptr};
};
TORCH_MODULE(LinearDecoder);

// Class embeddings attend jointly with the patch tokens; each patch's class scores are the
// cosine similarities between its projected token and each projected class token, normalised
// over classes by a LayerNorm. Its blocks use plain dot-product attention.
class MaskTransformerImpl : public torch::nn::Module {
 public:
  MaskTransformerImpl(const MaskTransformerConfig& config, int encoder_dim, int num_classes);
  torch::Tensor forward(const torch::Tensor& patches, int64_t grid_h, int64_t grid_w);

  torch::nn::Linear proj_dec{nullptr};
  torch::Tensor cls_emb, proj_patch, proj_classes;
  torch::nn::ModuleList blocks{nullptr};
  torch::nn::LayerNorm decoder_norm{nullptr}, mask_norm{nullptr};

 private:
  int num_classes_;
  AttentionConfig dot_product_;
};
TORCH_MODULE(MaskTransformer);

// Most window rows (windows x images) one forward of SegmentImage runs.
inline constexpr int64_t kMaxWindowRowsPerForward = 64;

class SegmenterNetImpl : public torch::nn::Module {
 public:
  explicit SegmenterNetImpl(const SegmenterConfig& config);

  // One window: images (B, 3, H, W), normalised, any H and W. Pads to the patch grid, encodes,
  // decodes, upsamples and crops back. Returns float32 logits (B, K, H, W) whatever the model's dtype.
  torch::Tensor forward(const torch::Tensor& images, std::vector<LayerTrace>* trace = nullptr);

  // Whole images (B, 3, H, W) of one size, any size: one window when they fit, else overlapping
  // windows whose logits are averaged (docs/model_formats.md). Returns (B, K, H, W) float32. The
  // trace, when asked for, holds window i of image j at batch row i * B + j.
  // Undefined when `stop`, asked before each group of windows, says to stop.
  torch::Tensor SegmentImage(const torch::Tensor& images, std::vector<LayerTrace>* trace = nullptr,
                             const StopCheck& stop = {});

  const SegmenterConfig& config() const { return config_; }

 private:
  SegmenterConfig config_;
  VisionTransformer encoder{nullptr};
  LinearDecoder linear_decoder{nullptr};
  MaskTransformer mask_decoder{nullptr};
};
TORCH_MODULE(SegmenterNet);

// Window starts along an axis of `size` pixels: 0, stride, ... while start + window < size,
// then size - window (flush with the border).
std::vector<int64_t> WindowStarts(int64_t size, int64_t window, int64_t stride);

}  // namespace elliptical::model
