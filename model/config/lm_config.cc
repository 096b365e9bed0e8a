#include "model/config/lm_config.h"

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "model/config/model_dir.h"

namespace elliptical::model {
namespace {

// Reads an enumerated string field; `names[i]` maps to `values[i]`.
template <typename E, size_t N>
absl::Status ReadChoice(const nlohmann::json& json, const char* key, const char* const (&names)[N],
                        const E (&values)[N], E* out) {
  if (!json.contains(key)) return absl::OkStatus();
  const std::string given = json[key].is_string() ? json[key].get<std::string>() : json[key].dump();
  std::string expected;
  for (size_t i = 0; i < N; ++i) {
    if (given == names[i]) {
      *out = values[i];
      return absl::OkStatus();
    }
    absl::StrAppend(&expected, i ? " or " : "", "\"", names[i], "\"");
  }
  return absl::InvalidArgumentError(
      absl::StrCat(key, " is ", json[key].dump(), "; expected ", expected));
}

absl::StatusOr<LmShape> ParseShape(const nlohmann::json& json) {
  if (!json.is_object()) return absl::InvalidArgumentError("\"lm\" must be an object");
  LmShape s;
  try {
    s.d_model = json.value("d_model", s.d_model);
    s.num_layers = json.value("num_layers", s.num_layers);
    s.num_heads = json.value("num_heads", s.num_heads);
    s.head_dim = json.value("head_dim", s.d_model / std::max(s.num_heads, 1));
    s.d_inner = json.value("d_inner", s.d_inner);
    s.layer_norm_eps = json.value("layer_norm_eps", s.layer_norm_eps);
    s.max_positions = json.value("max_positions", s.max_positions);
    s.embed_scale = json.value("embed_scale", s.embed_scale);
    s.tie_embeddings = json.value("tie_embeddings", s.tie_embeddings);
    s.output_bias = json.value("output_bias", s.output_bias);
    ELLIPTICAL_RETURN_IF_ERROR(ReadChoice(json, "norm", {"post", "pre"},
                                          {NormPlacement::kPost, NormPlacement::kPre}, &s.norm));
    ELLIPTICAL_RETURN_IF_ERROR(ReadChoice(json, "activation", {"relu", "gelu"},
                                          {Activation::kRelu, Activation::kGelu}, &s.activation));
    ELLIPTICAL_RETURN_IF_ERROR(
        ReadChoice(json, "positions", {"sinusoidal", "learned"},
                   {PositionEncoding::kSinusoidal, PositionEncoding::kLearned}, &s.positions));
    ELLIPTICAL_RETURN_IF_ERROR(
        ReadChoice(json, "position_order", {"ascending", "descending"},
                   {PositionOrder::kAscending, PositionOrder::kDescending}, &s.position_order));
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("lm: ", e.what()));
  }
  if (s.d_model < 1 || s.num_layers < 1 || s.num_heads < 1 || s.head_dim < 1 || s.d_inner < 1 ||
      s.max_positions < 1 || !(s.layer_norm_eps > 0) || !(s.embed_scale > 0)) {
    return absl::InvalidArgumentError("lm: sizes, layer_norm_eps and embed_scale must be positive");
  }
  if (s.positions == PositionEncoding::kSinusoidal && s.d_model % 2 != 0) {
    return absl::InvalidArgumentError("lm: sinusoidal positions need an even d_model");
  }
  return s;
}

absl::StatusOr<LmDecodeOptions> ParseDecodeOptions(const nlohmann::json& config) {
  LmDecodeOptions options;
  if (config.contains("sample_on_device")) {
    const nlohmann::json& value = config["sample_on_device"];
    if (value.is_boolean()) {
      options.sample_on_device = value.get<bool>() ? SampleOnDevice::kOn : SampleOnDevice::kOff;
    } else if (!(value.is_string() && value.get<std::string>() == "auto")) {
      return absl::InvalidArgumentError(absl::StrCat("sample_on_device is ", value.dump(),
                                                     "; expected \"auto\", true or false"));
    }
  }
  if (config.contains("cuda_graphs")) {
    const nlohmann::json& value = config["cuda_graphs"];
    if (!value.is_boolean()) {
      return absl::InvalidArgumentError(
          absl::StrCat("cuda_graphs is ", value.dump(), "; expected true or false"));
    }
    options.cuda_graphs = value.get<bool>();
  }
  return options;
}

}  // namespace

absl::string_view ScaleModeName(ScaleMode mode) {
  return mode == ScaleMode::kPrefix ? "prefix" : "segment";
}

absl::StatusOr<LmConfig> ReadLmConfig(const std::string& directory) {
  ELLIPTICAL_ASSIGN_OR_RETURN(ModelDirectory dir, ReadModelDirectory(directory));
  ELLIPTICAL_RETURN_IF_ERROR(ExpectFamily(dir, ModelFamily::kLanguageModel));
  LmConfig config;
  config.directory = directory;
  ELLIPTICAL_ASSIGN_OR_RETURN(config.runtime, ParseRuntimeFields(dir));
  nlohmann::json generation;
  try {
    config.vocab_size = dir.config.value("vocab_size", 0);
    const std::string tokenizer = dir.config.value("tokenizer", "");
    if (!tokenizer.empty()) config.tokenizer_path = directory + "/" + tokenizer;
    generation = dir.config.value("generation", nlohmann::json::object());
  } catch (const nlohmann::json::exception& e) {
    return ConfigError(dir, absl::InvalidArgumentError(e.what()));
  }
  if (config.vocab_size <= 0) {
    return ConfigError(dir, absl::InvalidArgumentError("vocab_size must be a positive integer"));
  }
  auto shape = ParseShape(dir.config.value("lm", nlohmann::json::object()));
  if (!shape.ok()) return ConfigError(dir, shape.status());
  config.shape = *shape;
  auto attention =
      ParseAttentionConfig(dir.config.value("attention", nlohmann::json()), config.shape.num_layers);
  if (!attention.ok()) return ConfigError(dir, attention.status());
  config.attention = *std::move(attention);

  const bool ascending = config.shape.position_order == PositionOrder::kAscending;
  const bool mean = config.attention.estimator == MetricEstimator::kMean;
  // A model whose positions all move when a token is added, or whose metric is a median, can
  // only be recomputed from scratch; default it to the mode that works.
  config.scale_mode = ascending && mean ? ScaleMode::kPrefix : ScaleMode::kSegment;
  if (auto s = ReadChoice(generation.is_object() ? generation : nlohmann::json::object(),
                          "scale_mode", {"prefix", "segment"},
                          {ScaleMode::kPrefix, ScaleMode::kSegment}, &config.scale_mode);
      !s.ok()) {
    return ConfigError(dir, absl::InvalidArgumentError(absl::StrCat("generation.", s.message())));
  }
  if (config.scale_mode == ScaleMode::kPrefix && !ascending) {
    return ConfigError(dir, absl::InvalidArgumentError(
                                "generation.scale_mode \"prefix\" needs lm.position_order "
                                "\"ascending\": with descending positions every cached key moves"));
  }
  auto decode = ParseDecodeOptions(dir.config);
  if (!decode.ok()) return ConfigError(dir, decode.status());
  config.decode = *decode;
  if (config.decode.cuda_graphs && config.scale_mode != ScaleMode::kPrefix) {
    return ConfigError(dir, absl::InvalidArgumentError(
                                "cuda_graphs needs generation.scale_mode \"prefix\": the segment "
                                "mode recomputes every sequence at a length that changes each step"));
  }
  if (config.scale_mode == ScaleMode::kPrefix && !mean) {
    return ConfigError(dir, absl::InvalidArgumentError(
                                "generation.scale_mode \"prefix\" needs attention.estimator "
                                "\"mean\": a running median cannot be kept in the cache"));
  }
  return config;
}

}  // namespace elliptical::model
