#include "model/config/config_schema.h"

#include <algorithm>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"

namespace elliptical::model {

KeySchema KeySchema::Of(std::initializer_list<std::string> leaves) {
  KeySchema schema;
  for (const std::string& key : leaves) schema.keys[key] = nullptr;
  return schema;
}

KeySchema& KeySchema::With(const std::string& key, KeySchema child) {
  keys[key] = std::make_shared<const KeySchema>(std::move(child));
  return *this;
}

namespace {

bool IsLeaf(const std::shared_ptr<const KeySchema>& schema) {
  return schema == nullptr || schema->keys.empty();
}

// attention_config.cc: the same object for every family.
KeySchema AttentionKeys() {
  return KeySchema::Of({"mode", "elliptical_layers", "score_scale", "estimator", "delta"});
}

// config_fields.cc, model_dir.cc and attention_config.cc: what every family reads.
KeySchema CommonKeys() {
  return KeySchema::Of({"family", "weights", "dtype", "device", "allow_tf32"}).With("attention", AttentionKeys());
}

// vision_fields.cc, vit_config.cc and config_fields.cc (labels, preprocess).
KeySchema VisionKeys() {
  KeySchema schema = CommonKeys();
  Merge(KeySchema::Of({"num_classes", "labels"})
            .With("vit", KeySchema::Of({"image_size", "patch_size", "in_channels", "embed_dim", "depth",
                                        "num_heads", "mlp_ratio", "qkv_bias", "layer_norm_eps"}))
            .With("preprocess", KeySchema::Of({"mean", "std"})),
        &schema);
  return schema;
}

// classifier_config.cc: the resize the classifier applies (config_fields.cc, ParseResizePolicy).
// The segmenter keeps each image's resolution, so it has none of these keys.
KeySchema ClassifierKeys() {
  KeySchema schema = VisionKeys();
  Merge(KeySchema().With("preprocess", KeySchema::Of({"resize", "interpolation", "crop_pct"})),
        &schema);
  return schema;
}

// segmenter_config.cc.
KeySchema SegmenterKeys() {
  KeySchema schema = VisionKeys();
  Merge(KeySchema()
            .With("decoder", KeySchema::Of({"type", "depth", "embed_dim", "num_heads", "mlp_ratio",
                                            "layer_norm_eps"}))
            .With("inference", KeySchema::Of({"window_size", "window_stride"})),
        &schema);
  return schema;
}

// lm_config.cc.
KeySchema LanguageModelKeys() {
  KeySchema schema = CommonKeys();
  Merge(KeySchema::Of({"vocab_size", "tokenizer", "sample_on_device", "cuda_graphs"})
            .With("lm", KeySchema::Of({"d_model", "num_layers", "num_heads", "head_dim", "d_inner",
                                       "norm", "activation", "layer_norm_eps", "positions",
                                       "position_order", "max_positions", "embed_scale",
                                       "tie_embeddings", "output_bias"}))
            .With("generation", KeySchema::Of({"scale_mode"})),
        &schema);
  return schema;
}

// Optimal string alignment distance: Levenshtein plus adjacent transpositions ("bacth"), the
// commonest typo, as one edit.
int EditDistance(const std::string& a, const std::string& b) {
  const size_t n = a.size(), m = b.size();
  std::vector<std::vector<int>> d(n + 1, std::vector<int>(m + 1));
  for (size_t i = 0; i <= n; ++i) d[i][0] = static_cast<int>(i);
  for (size_t j = 0; j <= m; ++j) d[0][j] = static_cast<int>(j);
  for (size_t i = 1; i <= n; ++i) {
    for (size_t j = 1; j <= m; ++j) {
      const int cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[n][m];
}

constexpr int kMaxSuggestionDistance = 2;

absl::Status UnknownKey(const std::string& key, const std::string& path, const KeySchema& schema,
                        const std::string& file) {
  std::string nearest;
  int best = kMaxSuggestionDistance + 1;
  std::vector<std::string> known;
  for (const auto& entry : schema.keys) {
    known.push_back(entry.first);
    const int distance = EditDistance(key, entry.first);
    if (distance < best) {
      best = distance;
      nearest = entry.first;
    }
  }
  const std::string suggestion =
      nearest.empty() ? "" : absl::StrCat("; did you mean \"", nearest, "\"?");
  return absl::InvalidArgumentError(absl::StrCat(file, ": unknown key \"", path, "\"", suggestion,
                                                 " (known here: ", absl::StrJoin(known, ", "), ")"));
}

absl::Status CheckObject(const nlohmann::json& object, const KeySchema& schema,
                         const std::string& prefix, const std::string& file) {
  for (const auto& item : object.items()) {
    const std::string path = prefix.empty() ? item.key() : absl::StrCat(prefix, ".", item.key());
    const auto known = schema.keys.find(item.key());
    if (known == schema.keys.end()) return UnknownKey(item.key(), path, schema, file);
    if (IsLeaf(known->second)) continue;
    if (!item.value().is_object()) {
      std::string shown = item.value().dump();
      if (shown.size() > 40) shown = shown.substr(0, 37) + "...";
      return absl::InvalidArgumentError(
          absl::StrCat(file, ": \"", path, "\" must be an object, not ", shown));
    }
    ELLIPTICAL_RETURN_IF_ERROR(CheckObject(item.value(), *known->second, path, file));
  }
  return absl::OkStatus();
}

}  // namespace

KeySchema FamilyKeys(ModelFamily family) {
  switch (family) {
    case ModelFamily::kImageClassifier: return ClassifierKeys();
    case ModelFamily::kSegmenter: return SegmenterKeys();
    case ModelFamily::kLanguageModel: return LanguageModelKeys();
  }
  return CommonKeys();
}

KeySchema ServingKeys() {
  KeySchema schema = KeySchema::Of({"input_form"});
  schema
      .With("batching", KeySchema::Of({"max_batch_size", "max_queue_delay_ms", "max_queue_size",
                                       "low_priority_max_wait_ms"}))
      .With("instances", KeySchema::Of({"count", "threads", "lend_idle_threads"}))
      .With("generation", KeySchema::Of({"max_running", "max_waiting", "max_cache_mb",
                                         "default_max_new_tokens", "max_new_tokens_limit"}))
      .With("warmup", KeySchema::Of({"enabled", "batch_sizes", "input"}));
  return schema;
}

void Merge(const KeySchema& other, KeySchema* into) {
  for (const auto& [key, theirs] : other.keys) {
    const auto mine = into->keys.find(key);
    if (mine == into->keys.end()) {
      into->keys.emplace(key, theirs);
    } else if (IsLeaf(mine->second) || IsLeaf(theirs)) {
      mine->second = nullptr;
    } else {
      KeySchema both = *mine->second;
      Merge(*theirs, &both);
      mine->second = std::make_shared<const KeySchema>(std::move(both));
    }
  }
}

absl::Status CheckKnownKeys(const nlohmann::json& config, const KeySchema& schema,
                            const std::string& file) {
  if (!config.is_object()) return absl::InvalidArgumentError(absl::StrCat(file, " is not a JSON object"));
  return CheckObject(config, schema, "", file);
}

}  // namespace elliptical::model
