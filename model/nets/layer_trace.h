// What a forward pass records per layer when asked (nothing, and no cost, otherwise); the
// networks fill it and model/nets/layer_stats.h summarises it for monitoring.
#pragma once

#include <torch/torch.h>

namespace elliptical::model {

struct LayerTrace {
  torch::Tensor metric;        // (B, H, D) float32; undefined for dot-product layers
  torch::Tensor token_cosine;  // (B,) mean pairwise cosine similarity of the layer's output
};

}  // namespace elliptical::model
