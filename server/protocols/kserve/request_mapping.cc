#include "server/protocols/kserve/request_mapping.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <set>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace elliptical::server::kserve {
namespace {

using inference::InferParameter;
using inference::InferTensorContents;
using inference::ModelInferRequest;

// An integer parameter (int64 or uint64; JSON numbers arrive as int64).
absl::StatusOr<int64_t> IntParameter(const InferParameter& p, absl::string_view what) {
  switch (p.parameter_choice_case()) {
    case InferParameter::kInt64Param: return p.int64_param();
    case InferParameter::kUint64Param:
      if (p.uint64_param() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        return Invalid(what, "is beyond INT64_MAX");
      }
      return static_cast<int64_t>(p.uint64_param());
    default: return Invalid(what, "must be an integer");
  }
}

absl::Status BoolParameter(const InferParameter& p, absl::string_view what) {
  if (p.parameter_choice_case() != InferParameter::kBoolParam) return Invalid(what, "must be a boolean");
  return absl::OkStatus();
}

absl::StatusOr<Priority> PriorityParameter(const InferParameter& p) {
  constexpr char kWhat[] = "request parameter \"priority\"";
  if (p.parameter_choice_case() == InferParameter::kStringParam) {
    if (p.string_param() == "high") return Priority::kHigh;
    if (p.string_param() == "normal") return Priority::kNormal;
    if (p.string_param() == "low") return Priority::kLow;
    return Invalid(kWhat, "must be \"high\", \"normal\", \"low\" or Triton's level (0 default, 1 highest)");
  }
  auto level = IntParameter(p, kWhat);
  if (!level.ok()) return level.status();
  // Triton's levels: 0 is the model's default, 1 the highest, larger numbers lower.
  if (*level < 0) return Invalid(kWhat, "must not be negative");
  if (*level == 0) return Priority::kNormal;
  if (*level == 1) return Priority::kHigh;
  if (*level == 2) return Priority::kNormal;
  return Priority::kLow;
}

bool HasTypedContents(const InferTensorContents& c) {
  return c.bool_contents_size() + c.int_contents_size() + c.int64_contents_size() + c.uint_contents_size() +
             c.uint64_contents_size() + c.fp32_contents_size() + c.fp64_contents_size() +
             c.bytes_contents_size() >
         0;
}

// image: BYTES [N] or [N, 1], one encoded file per element.
absl::Status MapEncoded(const ModelInferRequest::InferInputTensor& input, const std::string* raw,
                        int64_t max_images, VisionRequest* out) {
  const std::string what = "input \"image\"";
  if (input.datatype() != "BYTES") {
    return Invalid(what, absl::StrCat("datatype is ", Quoted(input.datatype()), ", not BYTES"));
  }
  const auto& shape = input.shape();
  if (!(shape.size() == 1 || (shape.size() == 2 && shape[1] == 1))) {
    return Invalid(what, absl::StrCat("shape ", ShapeString(shape), " is not [N] or [N, 1]"));
  }
  auto count = ElementCount(shape, what);
  if (!count.ok()) return count.status();
  if (*count < 1) return Invalid(what, "holds no images");
  if (*count > max_images) {
    return Invalid(what, absl::StrCat(*count, " images are beyond the limit of ", max_images, " per request"));
  }
  if (raw != nullptr) {
    auto elements = SplitRawBytes(*raw, *count, what);
    if (!elements.ok()) return elements.status();
    for (absl::string_view e : *elements) out->images.push_back(ImageInput::Encoded(std::string_view(e.data(), e.size())));
    return absl::OkStatus();
  }
  const InferTensorContents& c = input.contents();
  if (c.bytes_contents_size() != *count || HasTypedContents(c) != (c.bytes_contents_size() > 0)) {
    return Invalid(what, absl::StrCat("shape ", ShapeString(shape), " needs ", *count,
                                      " elements in contents.bytes_contents; it has ", c.bytes_contents_size(),
                                      c.bytes_contents_size() > 0 ? " (and others)" : ""));
  }
  for (const std::string& e : c.bytes_contents()) out->images.push_back(ImageInput::Encoded(e));
  return absl::OkStatus();
}

// A batch of n images of h x w, as a pixels or tensor input's shape gives them: at least one
// image and at most `max_images`, each side at least 1 and within int32.
absl::Status CheckImageBatch(const std::string& what, const google::protobuf::RepeatedField<int64_t>& shape,
                             int64_t n, int64_t h, int64_t w, int64_t max_images) {
  if (n < 1) return Invalid(what, "holds no images");
  if (n > max_images) {
    return Invalid(what, absl::StrCat(n, " images are beyond the limit of ", max_images, " per request"));
  }
  if (h < 1 || w < 1) return Invalid(what, absl::StrCat("shape ", ShapeString(shape), " has an empty image"));
  if (h > std::numeric_limits<int32_t>::max() || w > std::numeric_limits<int32_t>::max()) {
    return Invalid(what, absl::StrCat("shape ", ShapeString(shape), ": an image side is beyond INT32_MAX"));
  }
  return absl::OkStatus();
}

// pixels: UINT8 [N, H, W, C], row-major, channels interleaved.
absl::Status MapPixels(const ModelInferRequest::InferInputTensor& input, const std::string* raw,
                       int64_t max_images, VisionRequest* out) {
  const std::string what = "input \"pixels\"";
  if (input.datatype() != "UINT8") {
    return Invalid(what, absl::StrCat("datatype is ", Quoted(input.datatype()), ", not UINT8"));
  }
  const auto& shape = input.shape();
  if (shape.size() != 4) return Invalid(what, absl::StrCat("shape ", ShapeString(shape), " is not [N, H, W, C]"));
  auto total = ElementCount(shape, what);
  if (!total.ok()) return total.status();
  const int64_t n = shape[0], h = shape[1], w = shape[2], channels = shape[3];
  if (absl::Status s = CheckImageBatch(what, shape, n, h, w, max_images); !s.ok()) return s;
  if (channels != 1 && channels != 3 && channels != 4) {
    return Invalid(what, absl::StrCat("shape ", ShapeString(shape), ": C is ", channels, ", not 1, 3 or 4"));
  }
  const int64_t per_image = *total / n;  // exact: total is n * h * w * channels
  if (raw != nullptr) {
    if (static_cast<int64_t>(raw->size()) != *total) {
      return Invalid(what, absl::StrCat("shape ", ShapeString(shape), " needs ", *total,
                                        " bytes of raw contents; there are ", raw->size()));
    }
  } else {
    const InferTensorContents& c = input.contents();
    if (c.uint_contents_size() != *total || HasTypedContents(c) != (c.uint_contents_size() > 0)) {
      return Invalid(what, absl::StrCat("shape ", ShapeString(shape), " needs ", *total,
                                        " elements in contents.uint_contents; it has ", c.uint_contents_size(),
                                        c.uint_contents_size() > 0 ? " (and others)" : ""));
    }
    for (int i = 0; i < c.uint_contents_size(); ++i) {
      if (c.uint_contents(i) > 255) {
        return Invalid(what, absl::StrCat("element ", i, " is ", c.uint_contents(i), ", beyond UINT8"));
      }
    }
  }
  // Raw contents are the images' bytes already: views into the request. Typed contents hold a
  // uint32 per byte: packed once into bytes the request keeps.
  std::string_view bytes;
  if (raw != nullptr) {
    bytes = *raw;
  } else {
    auto packed = std::make_shared<std::string>(static_cast<size_t>(*total), '\0');
    const auto& values = input.contents().uint_contents();
    for (int64_t j = 0; j < *total; ++j) (*packed)[static_cast<size_t>(j)] = static_cast<char>(values[static_cast<int>(j)]);
    bytes = *packed;
    out->owned.push_back(std::move(packed));
  }
  out->images.reserve(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    out->images.push_back(ImageInput::Pixels(w, h, channels,
                                             bytes.substr(static_cast<size_t>(i * per_image), static_cast<size_t>(per_image))));
  }
  return absl::OkStatus();
}

// Whether a 16-bit float's exponent is all ones (infinity or NaN): FP16 has 5 exponent bits
// below the sign, BF16 8.
bool NonFinite16(uint16_t bits, model::PixelTensor::Type type) {
  const uint16_t exponent = type == model::PixelTensor::Type::kFloat16 ? 0x7C00 : 0x7F80;
  return (bits & exponent) == exponent;
}

// The index of the first element of `bytes` (little-endian elements of `type`) that is NaN or
// infinite, or -1.
int64_t FirstNonFinite(std::string_view bytes, model::PixelTensor::Type type) {
  const size_t size = static_cast<size_t>(model::PixelTensor::ElementBytes(type));
  const size_t count = bytes.size() / size;
  for (size_t i = 0; i < count; ++i) {
    const char* p = bytes.data() + i * size;
    if (type == model::PixelTensor::Type::kFloat32) {
      float f;
      std::memcpy(&f, p, sizeof f);
      if (!std::isfinite(f)) return static_cast<int64_t>(i);
    } else {
      const uint16_t bits = static_cast<uint16_t>(static_cast<unsigned char>(p[0]) |
                                                  static_cast<unsigned char>(p[1]) << 8);
      if (NonFinite16(bits, type)) return static_cast<int64_t>(i);
    }
  }
  return -1;
}

std::string DimsString(const std::vector<int64_t>& shape) {
  std::vector<std::string> dims;
  for (int64_t d : shape) dims.push_back(d < 0 ? "-1" : absl::StrCat(d));
  return absl::StrCat("[", absl::StrJoin(dims, ", "), "]");
}

// tensor: FP32 (or FP16, BF16) [N, 3, H, W], already resized and normalised by the client.
absl::Status MapTensor(const ModelInferRequest::InferInputTensor& input, const std::string* raw,
                       const ModelSnapshot& model, int64_t max_images, VisionRequest* out) {
  const std::string what = absl::StrCat("input \"", kTensor, "\"");
  model::PixelTensor::Type type;
  if (input.datatype() == "FP32") {
    type = model::PixelTensor::Type::kFloat32;
  } else if (input.datatype() == "FP16") {
    type = model::PixelTensor::Type::kFloat16;
  } else if (input.datatype() == "BF16") {
    type = model::PixelTensor::Type::kBFloat16;
  } else {
    return Invalid(what, absl::StrCat("datatype is ", Quoted(input.datatype()), ", not FP32, FP16 or BF16"));
  }
  const std::vector<int64_t> expected = TensorInputShape(model);
  const auto& shape = input.shape();
  const auto wrong_shape = [&] {
    return Invalid(what, absl::StrCat("shape ", ShapeString(shape), " is not ", DimsString(expected),
                                      " (N images, 3 channels, height, width)"));
  };
  if (shape.size() != 4 || shape[1] != 3) return wrong_shape();
  for (int i = 2; i < 4; ++i) {
    if (expected[static_cast<size_t>(i)] >= 0 && shape[i] != expected[static_cast<size_t>(i)]) return wrong_shape();
  }
  auto total = ElementCount(shape, what);
  if (!total.ok()) return total.status();
  const int64_t n = shape[0], h = shape[2], w = shape[3];
  if (absl::Status s = CheckImageBatch(what, shape, n, h, w, max_images); !s.ok()) return s;
  const int64_t element_bytes = model::PixelTensor::ElementBytes(type);
  if (*total > std::numeric_limits<int64_t>::max() / element_bytes) {
    return Invalid(what, absl::StrCat("shape ", ShapeString(shape), " holds more bytes than INT64_MAX"));
  }
  const int64_t bytes_needed = *total * element_bytes;
  std::string_view bytes;
  if (raw != nullptr) {
    if (static_cast<int64_t>(raw->size()) != bytes_needed) {
      return Invalid(what, absl::StrCat("shape ", ShapeString(shape), " of ", input.datatype(), " needs ",
                                        bytes_needed, " bytes of raw contents; there are ", raw->size()));
    }
    bytes = *raw;
  } else {
    const InferTensorContents& c = input.contents();
    if (type != model::PixelTensor::Type::kFloat32) {
      return Invalid(what, absl::StrCat(input.datatype(), " has no typed contents: send it as raw_input_contents"));
    }
    if (c.fp32_contents_size() != *total || HasTypedContents(c) != (c.fp32_contents_size() > 0)) {
      return Invalid(what, absl::StrCat("shape ", ShapeString(shape), " needs ", *total,
                                        " elements in contents.fp32_contents; it has ", c.fp32_contents_size(),
                                        c.fp32_contents_size() > 0 ? " (and others)" : ""));
    }
    // The typed elements are floats already, in memory the request keeps: a view of them as
    // bytes (this host's float layout is the tensor's: IEEE 754, little-endian).
    bytes = std::string_view(reinterpret_cast<const char*>(c.fp32_contents().data()),
                             static_cast<size_t>(bytes_needed));
  }
  if (const int64_t bad = FirstNonFinite(bytes, type); bad >= 0) {
    return Invalid(what, absl::StrCat("element ", bad, " is not finite (NaN or infinity): send the normalised image"));
  }
  const size_t per_image = static_cast<size_t>(bytes_needed / n);  // exact
  out->images.reserve(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    out->images.push_back(ImageInput::Tensor(w, h, type, bytes.substr(static_cast<size_t>(i) * per_image, per_image)));
  }
  return absl::OkStatus();
}

// The inputs a request may name, for errors: all three are accepted whatever the model's
// configured form (the one its metadata lists).
std::string AcceptedInputs(const ModelSnapshot& model) {
  return absl::StrCat("image (BYTES [N]), pixels (UINT8 [N, H, W, C]) or tensor (FP32 ",
                      DimsString(TensorInputShape(model)), "); the model's metadata lists ",
                      InputFormName(model.input_form));
}

absl::Status MapInputs(const ModelInferRequest& request, const ModelSnapshot& model, int64_t max_images,
                       VisionRequest* out) {
  if (request.inputs_size() != 1) {
    return absl::InvalidArgumentError(absl::StrCat("the request needs exactly one input, one of ",
                                                   AcceptedInputs(model), "; it has ", request.inputs_size()));
  }
  const ModelInferRequest::InferInputTensor& input = request.inputs(0);
  const std::string* raw = nullptr;
  if (request.raw_input_contents_size() > 0) {
    if (request.raw_input_contents_size() != request.inputs_size()) {
      return absl::InvalidArgumentError(absl::StrCat("raw_input_contents has ", request.raw_input_contents_size(),
                                                     " entries for ", request.inputs_size(), " inputs"));
    }
    if (HasTypedContents(input.contents())) {
      return Invalid(absl::StrCat("input ", Quoted(input.name())),
                     "has both contents and raw_input_contents");
    }
    raw = &request.raw_input_contents(0);
  }
  if (input.name() == kImage) return MapEncoded(input, raw, max_images, out);
  if (input.name() == kPixels) return MapPixels(input, raw, max_images, out);
  if (input.name() == kTensor) return MapTensor(input, raw, model, max_images, out);
  return absl::InvalidArgumentError(
      absl::StrCat("unknown input ", Quoted(input.name()), ": the accepted inputs are ", AcceptedInputs(model)));
}

// The requested outputs (all of `defaults` when none is named), each known, once.
absl::StatusOr<std::vector<OutputPlan::Output>> PlanOutputs(const ModelInferRequest& request,
                                                            const std::vector<std::string>& known,
                                                            const std::vector<std::string>& defaults,
                                                            bool classifier) {
  std::vector<OutputPlan::Output> outputs;
  if (request.outputs_size() == 0) {
    for (const std::string& name : defaults) outputs.push_back({name, 0});
    return outputs;
  }
  std::set<std::string> seen;
  for (const auto& requested : request.outputs()) {
    const std::string what = absl::StrCat("output ", Quoted(requested.name()));
    if (std::find(known.begin(), known.end(), requested.name()) == known.end()) {
      return Invalid(absl::StrCat("unknown ", what), absl::StrCat("the model's outputs are ", absl::StrJoin(known, ", ")));
    }
    if (!seen.insert(requested.name()).second) return Invalid(what, "is requested twice");
    OutputPlan::Output output{requested.name(), 0};
    for (const auto& [key, value] : requested.parameters()) {
      const std::string param = absl::StrCat(what, " parameter ", Quoted(key));
      if (key == "binary_data") {  // the HTTP binding's; the gRPC answer is binary anyway
        if (absl::Status s = BoolParameter(value, param); !s.ok()) return s;
      } else if (key == "classification") {
        if (!classifier || requested.name() != kProbabilities) {
          return Invalid(param, "applies to the classifier output probabilities only");
        }
        auto k = IntParameter(value, param);
        if (!k.ok()) return k.status();
        if (*k < 1) return Invalid(param, "must be at least 1");
        output.classification = *k;
      } else {
        return Invalid(param, "is not known (binary_data, classification)");
      }
    }
    outputs.push_back(std::move(output));
  }
  return outputs;
}

}  // namespace

absl::StatusOr<RequestOptions> ParseRequestParameters(const ModelInferRequest& request) {
  RequestOptions options;
  for (const auto& [key, value] : request.parameters()) {
    const std::string what = absl::StrCat("request parameter ", Quoted(key));
    if (key == "top_k") {
      auto k = IntParameter(value, what);
      if (!k.ok()) return k.status();
      if (*k < 1) return Invalid(what, "must be at least 1");
      options.top_k = *k;
      options.has_top_k = true;
    } else if (key == "priority") {
      auto priority = PriorityParameter(value);
      if (!priority.ok()) return priority.status();
      options.priority = *priority;
    } else if (key == "timeout") {
      auto us = IntParameter(value, what);
      if (!us.ok()) return us.status();
      if (*us < 0) return Invalid(what, "must not be negative (microseconds; 0: none)");
      if (*us > 0) options.timeout = absl::Microseconds(*us);
    } else if (key == "binary_data_output") {  // the HTTP binding's; the gRPC answer is binary anyway
      if (absl::Status s = BoolParameter(value, what); !s.ok()) return s;
    } else if (key == "sequence_id" || key == "sequence_start" || key == "sequence_end") {
      return Invalid(what, "sequence batching is not supported: every request stands alone");
    } else {
      return Invalid(what, "is not known (top_k, priority, timeout)");
    }
  }
  return options;
}

absl::StatusOr<OutputPlan> MapClassifyRequest(const ModelInferRequest& request, const ModelSnapshot& model,
                                              int64_t max_images, VisionRequest* out) {
  auto options = ParseRequestParameters(request);
  if (!options.ok()) return options.status();
  OutputPlan plan;
  plan.num_classes = NumClasses(model);
  plan.top_k = options->top_k;
  plan.raw = request.raw_input_contents_size() > 0;
  auto outputs = PlanOutputs(request, {kProbabilities, kTopClasses, kTopLabels, kTopProbabilities},
                             {kProbabilities, kTopClasses, kTopLabels, kTopProbabilities}, true);
  if (!outputs.ok()) return outputs.status();
  plan.outputs = *std::move(outputs);
  if (absl::Status s = MapInputs(request, model, max_images, out); !s.ok()) return s;
  out->model_name = request.model_name();
  out->model_version = request.model_version();
  out->priority = options->priority;
  return plan;
}

absl::StatusOr<OutputPlan> MapSegmentRequest(const ModelInferRequest& request, const ModelSnapshot& model,
                                             int64_t max_images, VisionRequest* out) {
  auto options = ParseRequestParameters(request);
  if (!options.ok()) return options.status();
  if (options->has_top_k) {
    return absl::InvalidArgumentError("request parameter \"top_k\": applies to classifiers, not segmenters");
  }
  OutputPlan plan;
  plan.num_classes = NumClasses(model);
  plan.raw = request.raw_input_contents_size() > 0;
  auto outputs = PlanOutputs(request, {kMask, kLabels}, {kMask}, false);
  if (!outputs.ok()) return outputs.status();
  plan.outputs = *std::move(outputs);
  if (absl::Status s = MapInputs(request, model, max_images, out); !s.ok()) return s;
  out->model_name = request.model_name();
  out->model_version = request.model_version();
  out->priority = options->priority;
  return plan;
}

absl::Status CheckRepositoryName(absl::string_view repository_name) {
  if (repository_name.empty()) return absl::OkStatus();
  return absl::NotFoundError(absl::StrCat("no repository named ", Quoted(repository_name),
                                          ": this server has one model repository, named \"\" (leave "
                                          "repository_name empty)"));
}

absl::Status CheckRepositoryParameters(
    const google::protobuf::Map<std::string, inference::ModelRepositoryParameter>& parameters, bool unload) {
  // In key order, so that the refusal names the same parameter every time.
  std::vector<std::string> keys;
  for (const auto& [key, value] : parameters) keys.push_back(key);
  std::sort(keys.begin(), keys.end());
  for (const std::string& key : keys) {
    const inference::ModelRepositoryParameter& value = parameters.at(key);
    if (unload && key == "unload_dependents") {
      if (value.parameter_choice_case() != inference::ModelRepositoryParameter::kBoolParam) {
        return absl::InvalidArgumentError("the parameter \"unload_dependents\" must be a bool");
      }
      continue;
    }
    if (key == "config" || absl::StartsWith(key, "file:")) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the parameter ", Quoted(key),
          " is not supported: this server loads a model only from its directory in the repository (Triton's "
          "config and file: overrides are not implemented)"));
    }
    return absl::InvalidArgumentError(absl::StrCat("unknown parameter ", Quoted(key), " of a repository ",
                                                   unload ? "unload" : "load",
                                                   unload ? " (supported: unload_dependents)" : " (none is supported)"));
  }
  return absl::OkStatus();
}

}  // namespace elliptical::server::kserve
