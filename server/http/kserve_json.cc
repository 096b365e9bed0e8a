#include "server/http/kserve_json.h"

#include <cstring>
#include <limits>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "server/kserve/tensors.h"

namespace elliptical::server::kserve {
namespace {

using nlohmann::json;

constexpr int kMaxDataDepth = 16;  // nesting of an input's "data" (a tensor's rank, at most)

template <typename Range>
json Array(const Range& range) {
  json a = json::array();
  for (const auto& x : range) a.push_back(x);
  return a;
}

std::string Dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

enum class Kind { kBool, kUnsigned, kSigned, kFloat, kBytes, kUnsupported, kUnknown };
struct Datatype {
  Kind kind;
  int size;  // bytes per element; 0 for BYTES
};

Datatype DatatypeOf(absl::string_view name) {
  if (name == "BOOL") return {Kind::kBool, 1};
  if (name == "UINT8") return {Kind::kUnsigned, 1};
  if (name == "UINT16") return {Kind::kUnsigned, 2};
  if (name == "UINT32") return {Kind::kUnsigned, 4};
  if (name == "UINT64") return {Kind::kUnsigned, 8};
  if (name == "INT8") return {Kind::kSigned, 1};
  if (name == "INT16") return {Kind::kSigned, 2};
  if (name == "INT32") return {Kind::kSigned, 4};
  if (name == "INT64") return {Kind::kSigned, 8};
  if (name == "FP32") return {Kind::kFloat, 4};
  if (name == "FP64") return {Kind::kFloat, 8};
  if (name == "BYTES") return {Kind::kBytes, 0};
  if (name == "FP16" || name == "BF16") return {Kind::kUnsupported, 2};
  return {Kind::kUnknown, 0};
}

void AppendLe(uint64_t v, int size, std::string* out) {
  for (int i = 0; i < size; ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}
uint64_t ReadLe(const char* p, int size) {
  uint64_t v = 0;
  for (int i = 0; i < size; ++i) v |= uint64_t{static_cast<unsigned char>(p[i])} << (8 * i);
  return v;
}

// A JSON parameter value as the gRPC binding's InferParameter.
absl::Status ToParameter(const json& value, absl::string_view what, inference::InferParameter* out) {
  if (value.is_boolean()) {
    out->set_bool_param(value.get<bool>());
  } else if (value.is_number_unsigned()) {
    const uint64_t v = value.get<uint64_t>();
    if (v <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      out->set_int64_param(static_cast<int64_t>(v));
    } else {
      out->set_uint64_param(v);
    }
  } else if (value.is_number_integer()) {
    out->set_int64_param(value.get<int64_t>());
  } else if (value.is_number_float()) {
    out->set_double_param(value.get<double>());
  } else if (value.is_string()) {
    out->set_string_param(value.get<std::string>());
  } else {
    return Invalid(what, "must be a boolean, a number or a string");
  }
  return absl::OkStatus();
}

absl::Status ToParameters(const json& object, absl::string_view what,
                          google::protobuf::Map<std::string, inference::InferParameter>* out) {
  if (!object.is_object()) return Invalid(what, "must be an object");
  for (auto it = object.begin(); it != object.end(); ++it) {
    const std::string name = absl::StrCat(what, " ", Quoted(it.key()));
    if (absl::Status s = ToParameter(it.value(), name, &(*out)[it.key()]); !s.ok()) return s;
  }
  return absl::OkStatus();
}

// The leaves of a (possibly nested) "data" array, row-major.
absl::Status Flatten(const json& data, int depth, absl::string_view what, std::vector<const json*>* out) {
  if (!data.is_array()) {
    out->push_back(&data);
    return absl::OkStatus();
  }
  if (depth >= kMaxDataDepth) return Invalid(what, absl::StrCat("\"data\" nests deeper than ", kMaxDataDepth));
  for (const json& element : data) {
    if (absl::Status s = Flatten(element, depth + 1, what, out); !s.ok()) return s;
  }
  return absl::OkStatus();
}

// One JSON element in the raw form of its datatype.
absl::Status EncodeElement(const json& v, const Datatype& type, size_t index, absl::string_view what,
                           std::string* raw) {
  auto bad = [&](absl::string_view why) { return Invalid(what, absl::StrCat("data element ", index, " ", why)); };
  switch (type.kind) {
    case Kind::kBool:
      if (!v.is_boolean()) return bad("is not a boolean");
      raw->push_back(v.get<bool>() ? 1 : 0);
      return absl::OkStatus();
    case Kind::kUnsigned: {
      if (!v.is_number_integer() || (!v.is_number_unsigned() && v.get<int64_t>() < 0)) {
        return bad("is not a non-negative integer");
      }
      const uint64_t x = v.get<uint64_t>();
      if (type.size < 8 && x >> (8 * type.size) != 0) return bad("is out of the datatype's range");
      AppendLe(x, type.size, raw);
      return absl::OkStatus();
    }
    case Kind::kSigned: {
      if (!v.is_number_integer()) return bad("is not an integer");
      if (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        return bad("is out of the datatype's range");
      }
      const int64_t x = v.get<int64_t>();
      const int64_t bound = type.size < 8 ? int64_t{1} << (8 * type.size - 1) : 0;
      if (type.size < 8 && (x < -bound || x >= bound)) return bad("is out of the datatype's range");
      AppendLe(static_cast<uint64_t>(x), type.size, raw);
      return absl::OkStatus();
    }
    case Kind::kFloat: {
      if (!v.is_number()) return bad("is not a number");
      const double x = v.get<double>();
      if (type.size == 4) {
        const float f = static_cast<float>(x);
        uint32_t bits;
        std::memcpy(&bits, &f, sizeof bits);
        AppendLe(bits, 4, raw);
      } else {
        uint64_t bits;
        std::memcpy(&bits, &x, sizeof bits);
        AppendLe(bits, 8, raw);
      }
      return absl::OkStatus();
    }
    case Kind::kBytes: {
      if (!v.is_string()) return bad("is not a string");
      const std::string& s = v.get_ref<const std::string&>();
      AppendLe(s.size(), 4, raw);
      *raw += s;
      return absl::OkStatus();
    }
    default: return bad("has an unsupported datatype");
  }
}

absl::Status ParseInput(const json& input, absl::string_view binary, size_t* binary_at,
                        inference::ModelInferRequest* out) {
  if (!input.is_object()) return absl::InvalidArgumentError("every element of \"inputs\" must be an object");
  auto name = input.find("name");
  if (name == input.end() || !name->is_string()) {
    return absl::InvalidArgumentError("every input needs a \"name\" string");
  }
  const std::string what = absl::StrCat("input ", Quoted(name->get<std::string>()));
  auto* tensor = out->add_inputs();
  tensor->set_name(name->get<std::string>());
  auto datatype = input.find("datatype");
  if (datatype == input.end() || !datatype->is_string()) return Invalid(what, "needs a \"datatype\" string");
  tensor->set_datatype(datatype->get<std::string>());
  auto shape = input.find("shape");
  if (shape == input.end() || !shape->is_array()) return Invalid(what, "needs a \"shape\" array");
  for (const json& d : *shape) {
    if (!d.is_number_integer() || (!d.is_number_unsigned() && d.get<int64_t>() < 0) ||
        (d.is_number_unsigned() && d.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))) {
      return Invalid(what, "\"shape\" must hold non-negative integers");
    }
    tensor->add_shape(d.get<int64_t>());
  }
  auto count = ElementCount(tensor->shape(), what);
  if (!count.ok()) return count.status();

  std::optional<uint64_t> binary_size;
  if (auto parameters = input.find("parameters"); parameters != input.end()) {
    if (!parameters->is_object()) return Invalid(what, "\"parameters\" must be an object");
    for (auto it = parameters->begin(); it != parameters->end(); ++it) {
      if (it.key() == "binary_data_size") {
        const json& v = it.value();
        if (!v.is_number_integer() || (!v.is_number_unsigned() && v.get<int64_t>() < 0)) {
          return Invalid(what, "parameter \"binary_data_size\" must be a non-negative integer");
        }
        binary_size = v.get<uint64_t>();
        continue;
      }
      const std::string param = absl::StrCat(what, " parameter ", Quoted(it.key()));
      if (absl::Status s = ToParameter(it.value(), param, &(*tensor->mutable_parameters())[it.key()]); !s.ok()) {
        return s;
      }
    }
  }
  auto data = input.find("data");
  std::string* raw = out->add_raw_input_contents();
  if (binary_size) {
    if (data != input.end()) return Invalid(what, "has both \"data\" and binary_data_size");
    if (*binary_size > binary.size() - *binary_at) {
      return Invalid(what, absl::StrCat("binary_data_size is ", *binary_size, " bytes; only ",
                                        binary.size() - *binary_at, " binary bytes remain in the body"));
    }
    raw->assign(binary.data() + *binary_at, static_cast<size_t>(*binary_size));
    *binary_at += static_cast<size_t>(*binary_size);
    return absl::OkStatus();
  }
  if (data == input.end()) return Invalid(what, "needs \"data\" (or the parameter binary_data_size)");
  const Datatype type = DatatypeOf(tensor->datatype());
  if (type.kind == Kind::kUnknown) return Invalid(what, absl::StrCat("datatype ", Quoted(tensor->datatype()), " is not known"));
  if (type.kind == Kind::kUnsupported) {
    return Invalid(what, absl::StrCat("datatype ", tensor->datatype(), " cannot be JSON data: send it as binary data"));
  }
  std::vector<const json*> elements;
  if (absl::Status s = Flatten(*data, 0, what, &elements); !s.ok()) return s;
  if (static_cast<int64_t>(elements.size()) != *count) {
    return Invalid(what, absl::StrCat("shape has ", *count, " elements; \"data\" has ", elements.size()));
  }
  raw->reserve(elements.size() * static_cast<size_t>(type.size > 0 ? type.size : 8));
  for (size_t i = 0; i < elements.size(); ++i) {
    if (absl::Status s = EncodeElement(*elements[i], type, i, what, raw); !s.ok()) return s;
  }
  return absl::OkStatus();
}

// A raw output tensor as JSON "data" (flat, row-major).
absl::StatusOr<json> DecodeData(const inference::ModelInferResponse::InferOutputTensor& tensor,
                                absl::string_view raw) {
  const std::string what = absl::StrCat("output ", Quoted(tensor.name()));
  auto count = ElementCount(tensor.shape(), what);
  if (!count.ok()) return count.status();
  const Datatype type = DatatypeOf(tensor.datatype());
  json data = json::array();
  if (type.kind == Kind::kBytes) {
    auto elements = SplitRawBytes(raw, *count, what);
    if (!elements.ok()) return elements.status();
    for (absl::string_view e : *elements) data.push_back(std::string(e));
    return data;
  }
  if (type.size == 0 || type.kind == Kind::kUnsupported ||
      static_cast<uint64_t>(*count) != raw.size() / static_cast<size_t>(type.size) ||
      raw.size() % static_cast<size_t>(type.size) != 0) {
    return absl::InternalError(absl::StrCat(what, ": raw contents do not match its datatype and shape"));
  }
  for (size_t at = 0; at < raw.size(); at += static_cast<size_t>(type.size)) {
    const uint64_t bits = ReadLe(raw.data() + at, type.size);
    switch (type.kind) {
      case Kind::kBool: data.push_back(bits != 0); break;
      case Kind::kUnsigned: data.push_back(bits); break;
      case Kind::kSigned: {
        const int shift = 64 - 8 * type.size;  // sign-extend
        data.push_back(static_cast<int64_t>(bits << shift) >> shift);
        break;
      }
      case Kind::kFloat:
        if (type.size == 4) {
          float f;
          const uint32_t b = static_cast<uint32_t>(bits);
          std::memcpy(&f, &b, sizeof f);
          data.push_back(f);
        } else {
          double d;
          std::memcpy(&d, &bits, sizeof d);
          data.push_back(d);
        }
        break;
      default: break;
    }
  }
  return data;
}

// Whether the output goes as binary data: its own binary_data parameter, else the request's
// binary_data_output, else JSON.
bool WantsBinary(const inference::ModelInferRequest& request, const std::string& name) {
  for (const auto& output : request.outputs()) {
    if (output.name() != name) continue;
    auto it = output.parameters().find("binary_data");
    if (it != output.parameters().end() && it->second.parameter_choice_case() == inference::InferParameter::kBoolParam) {
      return it->second.bool_param();
    }
  }
  auto it = request.parameters().find("binary_data_output");
  return it != request.parameters().end() &&
         it->second.parameter_choice_case() == inference::InferParameter::kBoolParam && it->second.bool_param();
}

json TensorsJson(const google::protobuf::RepeatedPtrField<inference::ModelMetadataResponse::TensorMetadata>& list) {
  json out = json::array();
  for (const auto& t : list) {
    out.push_back({{"name", t.name()}, {"datatype", t.datatype()}, {"shape", Array(t.shape())}});
  }
  return out;
}

}  // namespace

absl::StatusOr<inference::ModelInferRequest> ParseInferRequest(absl::string_view body,
                                                               std::optional<size_t> json_length) {
  if (json_length && *json_length > body.size()) {
    return absl::InvalidArgumentError(absl::StrCat("Inference-Header-Content-Length is ", *json_length,
                                                   " bytes; the body has ", body.size()));
  }
  const absl::string_view text = json_length ? body.substr(0, *json_length) : body;
  const absl::string_view binary = json_length ? body.substr(*json_length) : absl::string_view();
  const json request = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (request.is_discarded()) return absl::InvalidArgumentError("the request body is not valid JSON");
  if (!request.is_object()) return absl::InvalidArgumentError("the request body must be a JSON object");

  inference::ModelInferRequest out;
  try {
    if (auto id = request.find("id"); id != request.end()) {
      if (!id->is_string()) return absl::InvalidArgumentError("\"id\" must be a string");
      out.set_id(id->get<std::string>());
    }
    if (auto parameters = request.find("parameters"); parameters != request.end()) {
      if (absl::Status s = ToParameters(*parameters, "request parameter", out.mutable_parameters()); !s.ok()) return s;
    }
    auto inputs = request.find("inputs");
    if (inputs == request.end() || !inputs->is_array()) {
      return absl::InvalidArgumentError("the request needs an \"inputs\" array");
    }
    size_t binary_at = 0;
    for (const json& input : *inputs) {
      if (absl::Status s = ParseInput(input, binary, &binary_at, &out); !s.ok()) return s;
    }
    if (binary_at != binary.size()) {
      return absl::InvalidArgumentError(absl::StrCat("the body has ", binary.size() - binary_at,
                                                     " binary bytes that no input's binary_data_size claims"));
    }
    if (auto outputs = request.find("outputs"); outputs != request.end()) {
      if (!outputs->is_array()) return absl::InvalidArgumentError("\"outputs\" must be an array");
      for (const json& output : *outputs) {
        if (!output.is_object()) return absl::InvalidArgumentError("every element of \"outputs\" must be an object");
        auto name = output.find("name");
        if (name == output.end() || !name->is_string()) {
          return absl::InvalidArgumentError("every output needs a \"name\" string");
        }
        auto* requested = out.add_outputs();
        requested->set_name(name->get<std::string>());
        if (auto parameters = output.find("parameters"); parameters != output.end()) {
          const std::string what = absl::StrCat("output ", Quoted(requested->name()), " parameter");
          if (absl::Status s = ToParameters(*parameters, what, requested->mutable_parameters()); !s.ok()) return s;
        }
      }
    }
  } catch (const json::exception& e) {  // every access is type-checked first; this is a last guard
    return absl::InvalidArgumentError(absl::StrCat("the request JSON: ", e.what()));
  }
  return out;
}

absl::StatusOr<InferResponseBody> WriteInferResponse(const inference::ModelInferRequest& request,
                                                     const inference::ModelInferResponse& response) {
  if (response.raw_output_contents_size() != response.outputs_size()) {
    return absl::InternalError("the answer's outputs are not in raw form");
  }
  json header = {{"model_name", response.model_name()}, {"model_version", response.model_version()}};
  if (!response.id().empty()) header["id"] = response.id();
  json outputs = json::array();
  std::string binary;
  for (int i = 0; i < response.outputs_size(); ++i) {
    const auto& tensor = response.outputs(i);
    const std::string& raw = response.raw_output_contents(i);
    json output = {{"name", tensor.name()},
                   {"datatype", tensor.datatype()},
                   {"shape", Array(tensor.shape())}};
    if (WantsBinary(request, tensor.name())) {
      output["parameters"] = {{"binary_data_size", raw.size()}};
      binary += raw;
    } else {
      auto data = DecodeData(tensor, raw);
      if (!data.ok()) return data.status();
      output["data"] = *std::move(data);
    }
    outputs.push_back(std::move(output));
  }
  header["outputs"] = std::move(outputs);
  InferResponseBody out;
  out.body = Dump(header);
  if (!binary.empty()) {
    out.json_length = out.body.size();
    out.body += binary;
  } else {
    // Binary outputs of zero bytes still need the header for the client to find them.
    for (const auto& output : header["outputs"]) {
      if (output.contains("parameters")) out.json_length = out.body.size();
    }
  }
  return out;
}

std::string ServerMetadataJson(const inference::ServerMetadataResponse& metadata) {
  return Dump({{"name", metadata.name()},
               {"version", metadata.version()},
               {"extensions", Array(metadata.extensions())}});
}

std::string ModelMetadataJson(const inference::ModelMetadataResponse& metadata) {
  return Dump({{"name", metadata.name()},
               {"versions", Array(metadata.versions())},
               {"platform", metadata.platform()},
               {"inputs", TensorsJson(metadata.inputs())},
               {"outputs", TensorsJson(metadata.outputs())}});
}

std::string ErrorJson(absl::string_view message) { return Dump({{"error", std::string(message)}}); }

}  // namespace elliptical::server::kserve
