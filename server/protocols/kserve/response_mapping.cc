#include "server/protocols/kserve/response_mapping.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <vector>

#include "absl/strings/str_cat.h"
#include "server/core/top_classes.h"

namespace elliptical::server::kserve {
namespace {

using inference::ModelInferRequest;
using inference::ModelInferResponse;

void AppendLe64(uint64_t v, std::string* out) {
  for (int i = 0; i < 8; ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}
uint32_t FloatBits(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, sizeof bits);
  return bits;
}

// Adds output tensors to a response, as raw_output_contents or typed contents.
class OutputWriter {
 public:
  OutputWriter(ModelInferResponse* out, bool raw) : out_(out), raw_(raw) {}

  void Fp32(const std::string& name, std::vector<int64_t> shape, const std::vector<float>& values) {
    auto* t = Add(name, "FP32", shape);
    if (!raw_) {
      t->mutable_contents()->mutable_fp32_contents()->Add(values.begin(), values.end());
      return;
    }
    std::string* raw = out_->add_raw_output_contents();
    raw->reserve(4 * values.size());
    for (float v : values) AppendLe32(FloatBits(v), raw);
  }
  void Int64(const std::string& name, std::vector<int64_t> shape, const std::vector<int64_t>& values) {
    auto* t = Add(name, "INT64", shape);
    if (!raw_) {
      t->mutable_contents()->mutable_int64_contents()->Add(values.begin(), values.end());
      return;
    }
    std::string* raw = out_->add_raw_output_contents();
    raw->reserve(8 * values.size());
    for (int64_t v : values) AppendLe64(static_cast<uint64_t>(v), raw);
  }
  void Int32(const std::string& name, std::vector<int64_t> shape, const std::vector<int32_t>& values) {
    auto* t = Add(name, "INT32", shape);
    if (!raw_) {
      t->mutable_contents()->mutable_int_contents()->Add(values.begin(), values.end());
      return;
    }
    std::string* raw = out_->add_raw_output_contents();
    raw->reserve(4 * values.size());
    for (int32_t v : values) AppendLe32(static_cast<uint32_t>(v), raw);
  }
  void Bytes(const std::string& name, std::vector<int64_t> shape, const std::vector<std::string>& values) {
    auto* t = Add(name, "BYTES", shape);
    if (!raw_) {
      for (const std::string& v : values) t->mutable_contents()->add_bytes_contents(v);
      return;
    }
    *out_->add_raw_output_contents() = JoinRawBytes(values);
  }

 private:
  ModelInferResponse::InferOutputTensor* Add(const std::string& name, const char* datatype,
                                             const std::vector<int64_t>& shape) {
    auto* t = out_->add_outputs();
    t->set_name(name);
    t->set_datatype(datatype);
    for (int64_t d : shape) t->add_shape(d);
    return t;
  }

  ModelInferResponse* const out_;
  const bool raw_;
};

void FillHeader(const ModelInferRequest& request, int64_t version, ModelInferResponse* out) {
  out->set_model_name(request.model_name());
  out->set_model_version(version > 0 ? absl::StrCat(version) : request.model_version());
  out->set_id(request.id());
}

}  // namespace

absl::Status FillClassifyResponse(const OutputPlan& plan, const ModelInferRequest& request,
                                  const ClassifyResult& answer, ModelInferResponse* out) {
  FillHeader(request, answer.model_version, out);
  const int64_t n = static_cast<int64_t>(answer.classifications.size());
  const std::vector<std::string>& labels = *answer.labels;
  // The answer is dense: every class of every image.
  int64_t classes = n > 0 ? static_cast<int64_t>(answer.classifications[0].probabilities.size()) : plan.num_classes;
  for (const model::Classification& c : answer.classifications) {
    if (static_cast<int64_t>(c.probabilities.size()) != classes) {
      return absl::InternalError("the images' answers hold different numbers of classes");
    }
  }
  auto label = [&labels](int id) -> const std::string& {
    static const std::string kNone;
    return id < static_cast<int>(labels.size()) ? labels[id] : kNone;
  };
  // Each image's classes by probability, as far as any output needs them.
  int64_t deepest = std::min(plan.top_k, classes);
  for (const OutputPlan::Output& o : plan.outputs) deepest = std::max(deepest, std::min(o.classification, classes));
  std::vector<std::vector<int>> order;
  order.reserve(static_cast<size_t>(n));
  for (const model::Classification& c : answer.classifications) {
    order.push_back(TopClasses(c.probabilities, static_cast<uint64_t>(deepest)));
  }
  const int64_t k = std::min(plan.top_k, classes);
  OutputWriter writer(out, plan.raw);
  for (const OutputPlan::Output& output : plan.outputs) {
    if (output.name == kProbabilities && output.classification > 0) {
      const int64_t c = std::min(output.classification, classes);
      std::vector<std::string> strings;
      strings.reserve(static_cast<size_t>(n * c));
      for (int64_t i = 0; i < n; ++i) {
        const std::vector<float>& p = answer.classifications[static_cast<size_t>(i)].probabilities;
        for (int64_t j = 0; j < c; ++j) {
          const int id = order[static_cast<size_t>(i)][static_cast<size_t>(j)];
          strings.push_back(ClassificationString(p[static_cast<size_t>(id)], id, label(id)));
        }
      }
      writer.Bytes(output.name, {n, c}, strings);
    } else if (output.name == kProbabilities) {
      std::vector<float> probabilities;
      probabilities.reserve(static_cast<size_t>(n * classes));
      for (const model::Classification& c : answer.classifications) {
        probabilities.insert(probabilities.end(), c.probabilities.begin(), c.probabilities.end());
      }
      writer.Fp32(output.name, {n, classes}, probabilities);
    } else {
      std::vector<int64_t> ids;
      std::vector<std::string> top_labels;
      std::vector<float> probabilities;
      for (int64_t i = 0; i < n; ++i) {
        const std::vector<float>& p = answer.classifications[static_cast<size_t>(i)].probabilities;
        for (int64_t j = 0; j < k; ++j) {
          const int id = order[static_cast<size_t>(i)][static_cast<size_t>(j)];
          ids.push_back(id);
          top_labels.push_back(label(id));
          probabilities.push_back(p[static_cast<size_t>(id)]);
        }
      }
      if (output.name == kTopClasses) writer.Int64(output.name, {n, k}, ids);
      if (output.name == kTopLabels) writer.Bytes(output.name, {n, k}, top_labels);
      if (output.name == kTopProbabilities) writer.Fp32(output.name, {n, k}, probabilities);
    }
  }
  return absl::OkStatus();
}

absl::Status FillSegmentResponse(const OutputPlan& plan, const ModelInferRequest& request,
                                 const SegmentResult& answer, ModelInferResponse* out) {
  FillHeader(request, answer.model_version, out);
  OutputWriter writer(out, plan.raw);
  for (const OutputPlan::Output& output : plan.outputs) {
    if (output.name == kLabels) {
      const std::vector<std::string>& labels = *answer.labels;
      writer.Bytes(output.name, {static_cast<int64_t>(labels.size())}, labels);
      continue;
    }
    const int64_t n = static_cast<int64_t>(answer.masks.size());
    const int64_t w = n > 0 ? answer.masks[0].width : 0;
    const int64_t h = n > 0 ? answer.masks[0].height : 0;
    for (const model::Segmentation& m : answer.masks) {
      if (m.width != w || m.height != h) {
        // Encoded images are checked before compute (inference_protocol.cc); this is the guard
        // for whatever reaches here anyway.
        return ImagesDifferInSize(w, h, m.width, m.height);
      }
    }
    std::vector<int32_t> ids;
    ids.reserve(static_cast<size_t>(n * w * h));
    for (const model::Segmentation& m : answer.masks) {
      if (static_cast<int64_t>(m.class_map.size()) != w * h) {
        return absl::InternalError("a mask has the wrong number of class ids");
      }
      ids.insert(ids.end(), m.class_map.begin(), m.class_map.end());
    }
    writer.Int32(output.name, {n, h, w}, ids);
  }
  return absl::OkStatus();
}

std::string ClassificationString(float score, int64_t index, absl::string_view label) {
  std::string s = absl::StrCat(std::to_string(score), ":", index);
  if (!label.empty()) absl::StrAppend(&s, ":", label);
  return s;
}

void FillModelMetadata(const ModelSnapshot& model, inference::ModelMetadataResponse* out) {
  out->set_name(model.name);
  for (int64_t v : model.ready_versions) out->add_versions(absl::StrCat(v));
  out->set_platform(kPlatform);
  if (!model.family || *model.family == model::ModelFamily::kLanguageModel) return;
  auto add = [](auto* list, const char* name, const char* datatype, std::vector<int64_t> shape) {
    auto* t = list->Add();
    t->set_name(name);
    t->set_datatype(datatype);
    for (int64_t d : shape) t->add_shape(d);
  };
  // Exactly the one input a request must carry (generic clients fill every input listed).
  switch (model.input_form) {
    case InputForm::kImage: add(out->mutable_inputs(), kImage, "BYTES", {-1}); break;
    case InputForm::kPixels: add(out->mutable_inputs(), kPixels, "UINT8", {-1, -1, -1, -1}); break;
    case InputForm::kTensor: {
      // FP32 whatever precision the model runs in: every client can make it, the server casts
      // it as it casts its own preprocessing, and the metadata stays the same on every machine
      // (the precision "auto" picks depends on the CPU). FP16 and BF16 are accepted too.
      add(out->mutable_inputs(), kTensor, "FP32", TensorInputShape(model));
      break;
    }
  }
  const int64_t classes = NumClasses(model) > 0 ? NumClasses(model) : -1;
  if (*model.family == model::ModelFamily::kImageClassifier) {
    add(out->mutable_outputs(), kProbabilities, "FP32", {-1, classes});
    add(out->mutable_outputs(), kTopClasses, "INT64", {-1, -1});
    add(out->mutable_outputs(), kTopLabels, "BYTES", {-1, -1});
    add(out->mutable_outputs(), kTopProbabilities, "FP32", {-1, -1});
  } else {
    add(out->mutable_outputs(), kMask, "INT32", {-1, -1, -1});
    add(out->mutable_outputs(), kLabels, "BYTES", {classes});
  }
}

const char* RepositoryStateName(ModelState state) {
  switch (state) {
    case ModelState::kReady: return "READY";
    case ModelState::kLoading: return "LOADING";
    case ModelState::kUnloading: return "UNLOADING";
    case ModelState::kFailed:
    case ModelState::kUnavailable: return "UNAVAILABLE";
  }
  return "UNAVAILABLE";
}

void FillRepositoryIndex(const std::vector<ModelSnapshot>& versions, inference::RepositoryIndexResponse* out) {
  for (const ModelSnapshot& v : versions) {
    inference::RepositoryIndexResponse::ModelIndex* entry = out->add_models();
    entry->set_name(v.name);
    if (v.version > 0) entry->set_version(std::to_string(v.version));
    entry->set_state(RepositoryStateName(v.state));
    entry->set_reason(v.reason);
  }
}

}  // namespace elliptical::server::kserve
