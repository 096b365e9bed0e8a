#include "server/protocols/elliptical_v1/v1_codec.h"

#include <algorithm>
#include <limits>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "server/core/request_validation.h"
#include "server/core/top_classes.h"
#include "server/generation/sampler.h"

namespace elliptical::server {

namespace {

constexpr uint32_t kDefaultTopK = 5;

absl::StatusOr<Priority> PriorityFromProto(int priority) {
  switch (priority) {
    case v1::PRIORITY_UNSPECIFIED:
    case v1::PRIORITY_NORMAL: return Priority::kNormal;
    case v1::PRIORITY_HIGH: return Priority::kHigh;
    case v1::PRIORITY_LOW: return Priority::kLow;
    default:
      return absl::InvalidArgumentError(absl::StrCat("priority ", priority, " is not one of the Priority values"));
  }
}

std::vector<ImageInput> Images(const google::protobuf::RepeatedPtrField<v1::Image>& images) {
  std::vector<ImageInput> out;
  out.reserve(images.size());
  for (const v1::Image& image : images) {
    switch (image.source_case()) {
      case v1::Image::kEncoded: out.push_back(ImageInput::Encoded(image.encoded())); break;
      case v1::Image::kRaw:
        out.push_back(ImageInput::Pixels(image.raw().width_px(), image.raw().height_px(), image.raw().channels(),
                                         image.raw().pixels()));
        break;
      case v1::Image::SOURCE_NOT_SET: out.emplace_back(); break;
    }
  }
  return out;
}

template <typename Request>
absl::StatusOr<VisionRequest> Vision(const Request& request) {
  auto priority = PriorityFromProto(request.priority());
  if (!priority.ok()) return priority.status();
  VisionRequest out;
  out.model_name = request.model_name();
  out.images = Images(request.images());
  out.priority = *priority;
  out.attention_stats = request.return_attention_stats();
  return out;
}

}  // namespace

absl::StatusOr<VisionRequest> ToVisionRequest(const v1::ClassifyRequest& request, const RequestLimits& limits) {
  if (absl::Status s = CheckTopK(request.top_k(), limits); !s.ok()) return s;
  return Vision(request);
}

absl::StatusOr<VisionRequest> ToVisionRequest(const v1::SegmentRequest& request, const RequestLimits&) {
  return Vision(request);
}

absl::StatusOr<GenerateRequest> ToGenerateRequest(const v1::GenerateRequest& request, const RequestLimits& limits) {
  if (absl::Status s = CheckTopK(request.top_k(), limits); !s.ok()) return s;
  GenerateRequest out;
  out.model_name = request.model_name();
  out.prompt = request.prompt();
  out.max_new_tokens = request.max_new_tokens();
  out.sampling.temperature = request.temperature();
  out.sampling.top_k = static_cast<int>(request.top_k());  // at most --max_top_k
  out.sampling.top_p = request.top_p();
  out.seed = request.seed();
  out.stop.assign(request.stop().begin(), request.stop().end());
  out.prompt_logprobs = request.prompt_logprobs();
  out.sampling.presence_penalty = request.presence_penalty();
  out.sampling.frequency_penalty = request.frequency_penalty();
  // proto3's unset 0 means off, as 1 does; negative values stay and are refused by name.
  out.sampling.repetition_penalty = request.repetition_penalty() == 0 ? 1 : request.repetition_penalty();
  // Its count is checked with the other sampling fields (CheckSamplingParams), as the core's.
  for (const auto& [id, bias] : request.logit_bias()) {
    if (id > static_cast<uint32_t>(std::numeric_limits<int32_t>::max())) {
      return absl::InvalidArgumentError(absl::StrCat("logit_bias: token id ", id, " is out of range"));
    }
    out.sampling.logit_bias.emplace_back(static_cast<int32_t>(id), bias);
  }
  // Beyond int's range it is beyond kMaxTopLogprobs too: the core refuses it by name.
  out.sampling.top_logprobs = static_cast<int>(std::min<uint32_t>(request.top_logprobs(), kMaxTopLogprobs + 1));
  return out;
}

ScoreRequest ToScoreRequest(const v1::ScoreRequest& request) {
  ScoreRequest out;
  out.model_name = request.model_name();
  out.text = request.text();
  out.append_eos = !request.no_end_of_sequence();
  return out;
}

void FillClassifyResponse(const v1::ClassifyRequest& request, const ClassifyResult& result,
                          v1::ClassifyResponse* out) {
  const uint32_t k = request.top_k() == 0 ? kDefaultTopK : request.top_k();
  out->set_model_name(result.model_name);
  for (const model::Classification& c : result.classifications) {
    v1::Classification* classification = out->add_classifications();
    FillTopClasses(c.probabilities, *result.labels, k, classification);
    if (request.return_attention_stats()) FillAttentionStats(c.stats, classification->mutable_attention_stats());
  }
  FillTiming(result.timing, out->mutable_timing());
}

void FillSegmentResponse(const v1::SegmentRequest& request, const SegmentResult& result, v1::SegmentResponse* out) {
  out->set_model_name(result.model_name);
  for (const model::Segmentation& s : result.masks) {
    v1::SegmentationMask* mask = out->add_masks();
    FillMask(s, *result.labels, mask);
    if (request.return_attention_stats()) FillAttentionStats(s.stats, mask->mutable_attention_stats());
  }
  FillTiming(result.timing, out->mutable_timing());
}

void FillScoreResponse(const ScoreResult& result, v1::ScoreResponse* out) {
  out->set_model_name(result.model_name);
  for (const GenerationStream::ScoredToken& t : result.tokens) FillScoredToken(t, out->add_tokens());
  out->set_total_logprob(result.total_logprob);
  out->set_scored_tokens(static_cast<uint32_t>(result.scored_tokens));
  out->set_perplexity(result.perplexity);
  out->mutable_timing()->set_compute_us(static_cast<uint64_t>(absl::ToInt64Microseconds(result.compute)));
}

void FillToken(const TokenEvent& token, v1::Token* out) {
  out->set_id(static_cast<uint32_t>(token.id));
  out->set_text(token.text);
  out->set_logprob(token.logprob);
  for (const GenerationStream::TopToken& t : token.top_logprobs) {
    v1::TopLogprob* top = out->add_top_logprobs();
    top->set_id(static_cast<uint32_t>(t.id));
    top->set_text(t.text);
    top->set_logprob(t.logprob);
  }
}

void FillAttentionStats(const std::vector<model::LayerStats>& stats, v1::AttentionStats* out) {
  for (const model::LayerStats& layer : stats) {
    v1::LayerAttentionStats* l = out->add_layers();
    l->set_layer(layer.layer);
    l->set_elliptical(layer.elliptical);
    l->set_mean_token_cosine_similarity(layer.mean_token_cosine_similarity);
    for (const model::HeadMetricStats& head : layer.heads) {
      v1::HeadMetricStats* h = l->add_heads();
      h->set_mean(head.mean);
      h->set_min(head.min);
      h->set_effective_dimension(head.effective_dimension);
    }
  }
}

void FillTopClasses(const std::vector<float>& probabilities, const std::vector<std::string>& labels,
                    uint32_t top_k, v1::Classification* out) {
  for (int id : TopClasses(probabilities, top_k)) {
    v1::ClassScore* score = out->add_classes();
    score->set_class_id(id);
    score->set_label(id < static_cast<int>(labels.size()) ? labels[id] : "");
    score->set_probability(probabilities[id]);
  }
}

v1::ModelFamily FamilyToProto(const std::optional<model::ModelFamily>& family) {
  if (!family) return v1::MODEL_FAMILY_UNSPECIFIED;
  switch (*family) {
    case model::ModelFamily::kImageClassifier: return v1::MODEL_FAMILY_IMAGE_CLASSIFIER;
    case model::ModelFamily::kSegmenter: return v1::MODEL_FAMILY_SEGMENTER;
    case model::ModelFamily::kLanguageModel: return v1::MODEL_FAMILY_LANGUAGE_MODEL;
  }
  return v1::MODEL_FAMILY_UNSPECIFIED;
}

void FillModelStatus(const ModelSnapshot& snapshot, v1::ModelStatus* out) {
  switch (snapshot.state) {
    case ModelState::kLoading: out->set_state(v1::MODEL_STATE_LOADING); break;
    case ModelState::kReady: out->set_state(v1::MODEL_STATE_READY); break;
    case ModelState::kFailed: out->set_state(v1::MODEL_STATE_FAILED); break;
    case ModelState::kUnavailable: out->set_state(v1::MODEL_STATE_UNAVAILABLE); break;
    case ModelState::kUnloading: out->set_state(v1::MODEL_STATE_UNLOADING); break;
  }
  out->set_reason(snapshot.reason);
}

void FillModelSummary(const ModelSnapshot& snapshot, v1::ModelSummary* out) {
  out->set_name(snapshot.name);
  out->set_family(FamilyToProto(snapshot.family));
  FillModelStatus(snapshot, out->mutable_status());
  out->set_version(snapshot.version);
  for (int64_t v : snapshot.ready_versions) out->add_ready_versions(v);
}

void FillVersionStatus(const ModelSnapshot& snapshot, v1::ModelVersionStatus* out) {
  out->set_name(snapshot.name);
  out->set_version(snapshot.version);
  out->set_family(FamilyToProto(snapshot.family));
  FillModelStatus(snapshot, out->mutable_status());
  if (snapshot.state == ModelState::kReady) {
    out->set_load_ms(absl::ToDoubleMilliseconds(snapshot.report.load));
    out->set_warmup_ms(absl::ToDoubleMilliseconds(snapshot.report.warmup));
  }
}

void FillMetadata(const ModelSnapshot& snapshot, v1::GetModelMetadataResponse* out) {
  out->set_name(snapshot.name);
  out->set_family(FamilyToProto(snapshot.family));
  FillModelStatus(snapshot, out->mutable_status());
  if (!snapshot.description) return;
  const model::ModelDescription& d = *snapshot.description;
  out->set_device(d.device);
  out->set_dtype(d.dtype);
  out->set_dtype_reason(d.dtype_reason);
  v1::AttentionConfig* a = out->mutable_attention();
  a->set_mode(d.attention.mode == model::AttentionMode::kElliptical ? v1::ATTENTION_MODE_ELLIPTICAL
                                                                    : v1::ATTENTION_MODE_DOT_PRODUCT);
  if (d.attention.mode == model::AttentionMode::kElliptical) {
    for (int layer : d.attention.elliptical_layers) a->add_elliptical_layers(layer);
  }
  a->set_score_scale(static_cast<float>(d.attention.ScoreScale(d.embed_dim / std::max(1, d.num_heads))));
  a->set_metric_estimator(std::string(model::EstimatorName(d.attention.estimator)));
  out->set_image_size_px(d.image_size);
  for (const std::string& label : d.labels) out->add_labels(label);
  out->set_num_layers(d.num_layers);
  out->set_num_heads(d.num_heads);
  out->set_embed_dim(d.embed_dim);
  out->set_num_parameters(d.num_parameters);
}

void FillTiming(const ServeTiming& timing, v1::ServerTiming* out) {
  out->set_decode_us(static_cast<uint64_t>(absl::ToInt64Microseconds(timing.decode)));
  out->set_preprocess_us(static_cast<uint64_t>(absl::ToInt64Microseconds(timing.preprocess)));
  out->set_queue_us(static_cast<uint64_t>(absl::ToInt64Microseconds(timing.batch.queue)));
  out->set_compute_us(static_cast<uint64_t>(absl::ToInt64Microseconds(timing.batch.compute)));
  out->set_batch_size(static_cast<uint32_t>(timing.batch.batch_size));
}

void FillMask(const model::Segmentation& segmentation, const std::vector<std::string>& labels,
              v1::SegmentationMask* out) {
  out->set_width_px(static_cast<uint32_t>(segmentation.width));
  out->set_height_px(static_cast<uint32_t>(segmentation.height));
  const std::vector<int32_t>& ids = segmentation.class_map;
  std::string bytes;
  if (labels.size() <= 256) {
    bytes.resize(ids.size());
    for (size_t i = 0; i < ids.size(); ++i) bytes[i] = static_cast<char>(ids[i]);
    out->set_class_ids_u8(std::move(bytes));
  } else {
    bytes.resize(2 * ids.size());
    for (size_t i = 0; i < ids.size(); ++i) {
      bytes[2 * i] = static_cast<char>(ids[i] & 0xFF);
      bytes[2 * i + 1] = static_cast<char>((ids[i] >> 8) & 0xFF);
    }
    out->set_class_ids_u16(std::move(bytes));
  }
  for (const std::string& label : labels) out->add_labels(label);
}

void FillScoredToken(const GenerationStream::ScoredToken& token, v1::ScoredToken* out) {
  out->set_id(static_cast<uint32_t>(token.id));
  out->set_text(token.text);
  out->set_piece(token.piece);
  out->set_logprob(token.logprob);
  out->set_has_logprob(token.has_logprob);
}

void FillSummary(const FinishedEvent& e, v1::GenerationSummary* out) {
  switch (e.reason) {
    case FinishReason::kLength: out->set_finish_reason(v1::FINISH_REASON_LENGTH); break;
    case FinishReason::kEndOfSequence: out->set_finish_reason(v1::FINISH_REASON_END_OF_SEQUENCE); break;
    case FinishReason::kStopSequence: out->set_finish_reason(v1::FINISH_REASON_STOP_SEQUENCE); break;
  }
  out->set_prompt_tokens(static_cast<uint32_t>(e.prompt_tokens));
  out->set_generated_tokens(static_cast<uint32_t>(e.generated_tokens));
  out->set_time_to_first_token_us(static_cast<uint64_t>(absl::ToInt64Microseconds(e.time_to_first_token)));
  out->set_total_us(static_cast<uint64_t>(absl::ToInt64Microseconds(e.total)));
}

}  // namespace elliptical::server
