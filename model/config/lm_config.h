// A decoder-only language model directory (docs/model_formats.md, "language_model"): the
// paper's post-LN LM and a pre-LN variant, sinusoidal or learned positions, tied or untied
// output, and how the elliptical metric is estimated while generating (ScaleMode).
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "model/config/attention_config.h"
#include "model/config/config_fields.h"

namespace elliptical::model {

enum class NormPlacement { kPost, kPre };
enum class Activation { kRelu, kGelu };
enum class PositionEncoding { kSinusoidal, kLearned };
// kDescending is Transformer-XL's absolute positions (token t of L is at L-1-t).
enum class PositionOrder { kAscending, kDescending };
// How m is estimated over a sequence (ELLIPTICAL.md, "Generation with a KV cache").
//   kSegment: mean over every token of the sequence (the reference; no KV cache possible).
//   kPrefix: the query at position t uses the mean over positions 0..t (KV-cache friendly).
enum class ScaleMode { kSegment, kPrefix };

struct LmShape {
  int d_model = 128;
  int num_layers = 16;
  int num_heads = 8;
  int head_dim = 16;
  int d_inner = 2048;
  NormPlacement norm = NormPlacement::kPost;
  Activation activation = Activation::kRelu;
  double layer_norm_eps = 1e-5;
  PositionEncoding positions = PositionEncoding::kSinusoidal;
  PositionOrder position_order = PositionOrder::kAscending;
  int max_positions = 2048;
  double embed_scale = 1.0;
  bool tie_embeddings = true;
  bool output_bias = true;
};

// config.json "sample_on_device" (language_model.h, LanguageModel::samples_on_device).
enum class SampleOnDevice { kAuto, kOn, kOff };

// How generation runs on the device: top-level keys of config.json, read with the runtime ones.
struct LmDecodeOptions {
  // "auto" (default; on for a CUDA model, off on the CPU), true or false.
  SampleOnDevice sample_on_device = SampleOnDevice::kAuto;
  // "cuda_graphs": decode steps over every live sequence replay a CUDA graph captured once per
  // batch-size bucket. Needs generation.scale_mode "prefix"; no effect on the CPU (the model's
  // description says so).
  bool cuda_graphs = false;
};

struct LmConfig {
  std::string directory;
  RuntimeFields runtime;
  std::string tokenizer_path;  // empty when the directory has no tokenizer
  int vocab_size = 0;
  LmShape shape;
  AttentionConfig attention;
  ScaleMode scale_mode = ScaleMode::kPrefix;
  LmDecodeOptions decode;
};

absl::StatusOr<LmConfig> ReadLmConfig(const std::string& directory);

absl::string_view ScaleModeName(ScaleMode mode);

}  // namespace elliptical::model
