// Vision Transformer encoder and classifier with timm's parameter names, so a DeiT/ViT
// state_dict converted to safetensors loads as it is:
//   patch_embed.proj, cls_token, pos_embed, blocks.{i}.{norm1,attn.qkv,attn.proj,norm2,
//   mlp.fc1,mlp.fc2}, norm, head.
// Elliptical attention adds no parameters: the same weights run either mode.
#pragma once

#include <vector>

#include <torch/torch.h>

#include "model/nets/layer_trace.h"

#include "model/config/attention_config.h"
#include "model/nets/elliptical_attention.h"
#include "model/config/vit_config.h"

namespace elliptical::model {

// Mean pairwise cosine similarity between the tokens of each sample: x (B, N, C) -> (B,).
// Uses |sum_n u_n|^2 = N + sum_{n != n'} u_n . u_n' with u the unit vectors: O(N*C).
// token_mask (B, N) bool, when defined, limits it to each sample's real tokens.
torch::Tensor MeanTokenCosineSimilarity(const torch::Tensor& x,
                                        const torch::Tensor& token_mask = torch::Tensor());

class MlpImpl : public torch::nn::Module {
 public:
  MlpImpl(int in_dim, int hidden_dim);
  torch::Tensor forward(const torch::Tensor& x);
  PackedLinear fc1{nullptr}, fc2{nullptr};
};
TORCH_MODULE(Mlp);

// Pre-LN transformer block: x + attn(norm1(x)), then x + mlp(norm2(x)).
class BlockImpl : public torch::nn::Module {
 public:
  explicit BlockImpl(const ViTConfig& config);
  // Returns the block output; `values` receives this layer's attention values (B, H, N, D).
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& v_prev,
                        const AttentionConfig& attention, torch::Tensor* values,
                        torch::Tensor* metric);
  torch::nn::LayerNorm norm1{nullptr}, norm2{nullptr};
  SelfAttention attn{nullptr};
  Mlp mlp{nullptr};
};
TORCH_MODULE(Block);

class PatchEmbedImpl : public torch::nn::Module, public CpuPackable {
 public:
  explicit PatchEmbedImpl(const ViTConfig& config);
  // (B, 3, H, W) -> (B, num_patches, C)
  torch::Tensor forward(const torch::Tensor& images);
  // A stride-P, P x P convolution is a matmul over non-overlapping patches: packed, it runs as
  // one (a bf16 convolution measured about 1 ms of a 15 ms DeiT-Tiny forward and did not speed
  // up with a second thread).
  bool Pack(int64_t rows) override;
  torch::nn::Conv2d proj{nullptr};

 private:
  int patch_size_;
  PackedLinear as_linear_{nullptr};  // not registered: the weights stay proj's
};
TORCH_MODULE(PatchEmbed);

class VisionTransformerImpl : public torch::nn::Module {
 public:
  // num_classes 0 builds the encoder alone, without `head` (the segmenter's encoder).
  VisionTransformerImpl(const ViTConfig& config, AttentionConfig attention, int num_classes);

  // images: (B, 3, image_size, image_size), normalised. Returns logits (B, num_classes).
  // With `trace`, fills one LayerTrace per block.
  torch::Tensor forward(const torch::Tensor& images, std::vector<LayerTrace>* trace = nullptr);

  // Token representations after the final norm: (B, 1 + patches, C). Any height and width
  // that are multiples of the patch size: the position embeddings are resized to the grid.
  torch::Tensor ForwardFeatures(const torch::Tensor& images, std::vector<LayerTrace>* trace);

  const ViTConfig& config() const { return config_; }
  const AttentionConfig& attention() const { return attention_; }

 private:
  // (1, 1 + gh*gw, C): the class token's embedding and the patch grid's, bilinearly resized
  // from the training grid when the input has another shape (as Segmenter does).
  torch::Tensor PositionEmbedding(int64_t grid_h, int64_t grid_w) const;

  ViTConfig config_;
  AttentionConfig attention_;
  PatchEmbed patch_embed{nullptr};
  torch::Tensor cls_token, pos_embed;
  torch::nn::ModuleList blocks{nullptr};
  torch::nn::LayerNorm norm{nullptr};
  PackedLinear head{nullptr};
};
TORCH_MODULE(VisionTransformer);

}  // namespace elliptical::model
