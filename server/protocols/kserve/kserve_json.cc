#include "server/protocols/kserve/kserve_json.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <memory>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "server/transport/http/bounded_json.h"
#include "server/protocols/kserve/tensors.h"

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

// One element of "data" in the raw form of its datatype; the reason it cannot be (to follow
// "data element <i> "), or nullptr. Integers are as nlohmann's parser reads them: without a
// minus sign kUnsigned, with one kSigned ("-0" too, a valid unsigned 0).
const char* EncodeElement(const bounded_json::Leaf& v, const Datatype& type, std::string* raw) {
  using Type = bounded_json::Leaf::Type;
  switch (type.kind) {
    case Kind::kBool:
      if (v.type != Type::kBool) return "is not a boolean";
      raw->push_back(v.boolean ? 1 : 0);
      return nullptr;
    case Kind::kUnsigned: {
      uint64_t x;
      if (v.type == Type::kUnsigned) {
        x = v.unsigned_value;
      } else if (v.type == Type::kSigned && v.signed_value >= 0) {
        x = static_cast<uint64_t>(v.signed_value);
      } else {
        return "is not a non-negative integer";
      }
      if (type.size < 8 && x >> (8 * type.size) != 0) return "is out of the datatype's range";
      AppendLe(x, type.size, raw);
      return nullptr;
    }
    case Kind::kSigned: {
      int64_t x;
      if (v.type == Type::kUnsigned) {
        if (v.unsigned_value > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
          return "is out of the datatype's range";
        }
        x = static_cast<int64_t>(v.unsigned_value);
      } else if (v.type == Type::kSigned) {
        x = v.signed_value;
      } else {
        return "is not an integer";
      }
      const int64_t bound = type.size < 8 ? int64_t{1} << (8 * type.size - 1) : 0;
      if (type.size < 8 && (x < -bound || x >= bound)) return "is out of the datatype's range";
      AppendLe(static_cast<uint64_t>(x), type.size, raw);
      return nullptr;
    }
    case Kind::kFloat: {
      double x;
      if (v.type == Type::kUnsigned) {
        x = static_cast<double>(v.unsigned_value);
      } else if (v.type == Type::kSigned) {
        x = static_cast<double>(v.signed_value);
      } else if (v.type == Type::kFloat) {
        x = v.float_value;
      } else {
        return "is not a number";
      }
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
      return nullptr;
    }
    case Kind::kBytes:
      if (v.type != Type::kString) return "is not a string";
      AppendLe(v.string.size(), 4, raw);
      raw->append(v.string.data(), v.string.size());
      return nullptr;
    default: return "has an unsupported datatype";
  }
}

// An input's "data", taken from the parser element by element (bounded_json.h) instead of
// becoming DOM nodes. When the input's "datatype" came before its "data", as clients write it,
// each element is encoded at once into the raw contents; otherwise it is kept on a tape (a
// type byte, then the value: an integer's magnitude in as few bytes as it needs, so a small one
// takes 2; 8 bytes for a float; length and bytes for a string) and encoded once the input's
// datatype is known. Either way the problems are reported as the DOM's walk
// over "data" found them: nesting first, then the element count, then the first bad element.
class DataSink final : public bounded_json::Sink {
 public:
  // `type`: the datatype, when known and encodable; `reserve`: bytes to set aside for its raw
  // contents, once an element comes (and is charged for them).
  DataSink(std::optional<Datatype> type, std::string datatype, size_t reserve)
      : type_(type), datatype_(std::move(datatype)), reserve_(reserve) {}

  void BeginArray(int depth) override {
    if (depth >= kMaxDataDepth && !too_deep_) {
      too_deep_ = true;
      Drop();
    }
  }

  size_t Add(const bounded_json::Leaf& leaf) override {
    const int64_t index = count_++;
    if (too_deep_ || bad_element_) return 0;  // refused whatever follows
    if (type_) {
      if (reserve_ != 0) buffer_.reserve(std::exchange(reserve_, 0));
      if (const char* why = EncodeElement(leaf, *type_, &buffer_)) {
        bad_element_ = why;
        bad_index_ = index;
        Drop();
      }
    } else {
      Record(leaf);
    }
    // Charged as memory taken: the buffer's growth.
    const size_t grown = buffer_.capacity() > charged_ ? buffer_.capacity() - charged_ : 0;
    charged_ += grown;
    return grown;
  }

  // The raw contents for `type` (the input's final datatype, named `datatype`) and `count`
  // elements (its shape's).
  absl::Status Finish(const Datatype& type, const std::string& datatype, int64_t count, absl::string_view what,
                      std::string* raw) {
    if (too_deep_) return Invalid(what, absl::StrCat("\"data\" nests deeper than ", kMaxDataDepth));
    if (count_ != count) return Invalid(what, absl::StrCat("shape has ", count, " elements; \"data\" has ", count_));
    if (type_) {
      if (datatype != datatype_) {
        // A repeated "datatype" key that came after "data": the elements went by the first.
        return Invalid(what, absl::StrCat("\"data\" was read as ", Quoted(datatype_), "; a later \"datatype\" says ",
                                          Quoted(datatype)));
      }
      if (bad_element_) return Invalid(what, absl::StrCat("data element ", bad_index_, " ", bad_element_));
      *raw = std::move(buffer_);
      return absl::OkStatus();
    }
    raw->reserve(static_cast<size_t>(count) * static_cast<size_t>(type.size));
    bounded_json::Leaf leaf;
    size_t at = 0;
    for (int64_t i = 0; i < count; ++i) {
      at = Replay(at, &leaf);
      if (const char* why = EncodeElement(leaf, type, raw)) {
        return Invalid(what, absl::StrCat("data element ", i, " ", why));
      }
    }
    Drop();
    return absl::OkStatus();
  }

 private:
  void Drop() { std::string().swap(buffer_); }

  template <typename T>
  void Put(const T& value) {
    buffer_.append(reinterpret_cast<const char*>(&value), sizeof value);
  }
  template <typename T>
  T Get(size_t* at) const {
    T value;
    std::memcpy(&value, buffer_.data() + *at, sizeof value);
    *at += sizeof value;
    return value;
  }

  // The type in the tag byte's low 4 bits; an integer's byte count in its high 4.
  void PutInteger(bounded_json::Leaf::Type type, uint64_t magnitude) {
    int bytes = 0;
    while (bytes < 8 && magnitude >> (8 * bytes) != 0) ++bytes;
    buffer_.push_back(static_cast<char>(static_cast<int>(type) | bytes << 4));
    AppendLe(magnitude, bytes, &buffer_);
  }

  void Record(const bounded_json::Leaf& leaf) {
    using Type = bounded_json::Leaf::Type;
    switch (leaf.type) {
      case Type::kSigned:  // as its magnitude (a two's complement negation, INT64_MIN's included)
        PutInteger(leaf.type, 0 - static_cast<uint64_t>(leaf.signed_value));
        return;
      case Type::kUnsigned: PutInteger(leaf.type, leaf.unsigned_value); return;
      default: break;
    }
    buffer_.push_back(static_cast<char>(leaf.type));
    switch (leaf.type) {
      case Type::kBool: buffer_.push_back(leaf.boolean ? 1 : 0); break;
      case Type::kFloat: Put(leaf.float_value); break;
      case Type::kString:
        Put(leaf.string.size());
        buffer_.append(leaf.string.data(), leaf.string.size());
        break;
      default: break;
    }
  }

  // The tape's element at `at` into `leaf`; returns where the next begins.
  size_t Replay(size_t at, bounded_json::Leaf* leaf) const {
    using Type = bounded_json::Leaf::Type;
    *leaf = bounded_json::Leaf();
    const auto tag = static_cast<unsigned char>(buffer_[at++]);
    leaf->type = static_cast<Type>(tag & 0x0F);
    switch (leaf->type) {
      case Type::kSigned:
      case Type::kUnsigned: {
        const int bytes = tag >> 4;
        const uint64_t magnitude = ReadLe(buffer_.data() + at, bytes);
        at += static_cast<size_t>(bytes);
        if (leaf->type == Type::kSigned) {
          leaf->signed_value = static_cast<int64_t>(0 - magnitude);
        } else {
          leaf->unsigned_value = magnitude;
        }
        break;
      }
      case Type::kBool: leaf->boolean = buffer_[at++] != 0; break;
      case Type::kFloat: leaf->float_value = Get<double>(&at); break;
      case Type::kString: {
        const size_t size = Get<size_t>(&at);
        leaf->string = absl::string_view(buffer_.data() + at, size);
        at += size;
        break;
      }
      case Type::kNull:
      case Type::kObject: break;
    }
    return at;
  }

  const std::optional<Datatype> type_;
  const std::string datatype_;
  size_t reserve_;
  std::string buffer_;  // type_: the raw contents so far; otherwise the tape
  size_t charged_ = 0;
  int64_t count_ = 0;
  bool too_deep_ = false;
  const char* bad_element_ = nullptr;  // type_: the first element that cannot be encoded
  int64_t bad_index_ = 0;
};

// Diverts every input's "data" ({"inputs": [{"data": ...}]}) to a DataSink of its own.
class DataDiverter final : public bounded_json::Diverter {
 public:
  bounded_json::Sink* Divert(const std::vector<bounded_json::PathStep>& path, const json& input,
                             absl::string_view key, size_t bytes_left) override {
    if (key != "data" || path.size() != 2 || path[0].in_array || path[0].key != "inputs" || !path[1].in_array) {
      return nullptr;
    }
    std::optional<Datatype> type;
    std::string datatype;
    size_t reserve = 0;
    if (auto it = input.find("datatype"); it != input.end() && it->is_string()) {
      datatype = it->get<std::string>();
      const Datatype t = DatatypeOf(datatype);
      if (t.kind != Kind::kUnknown && t.kind != Kind::kUnsupported) type = t;
      // The shape's count, as far as the rest of the body could hold it (each element takes at
      // least a digit and a comma): the raw contents then grow without copies.
      if (auto shape = input.find("shape"); type && t.size > 0 && shape != input.end() && shape->is_array()) {
        const uint64_t most = bytes_left / 2 + 1;
        uint64_t count = 1;
        for (const json& d : *shape) {
          const uint64_t v = d.is_number_unsigned() ? d.get<uint64_t>() : 0;
          count = v != 0 && count > most / v ? most : std::min(most, count * v);
        }
        reserve = static_cast<size_t>(count) * static_cast<size_t>(t.size);
      }
    }
    sinks_.push_back(std::make_unique<DataSink>(type, std::move(datatype), reserve));
    return sinks_.back().get();
  }

  // The sink of the diversion numbered `index` (the subtype of its place in the DOM).
  DataSink* sink(uint64_t index) const { return index < sinks_.size() ? sinks_[index].get() : nullptr; }

 private:
  std::vector<std::unique_ptr<DataSink>> sinks_;
};

absl::Status ParseInput(const json& input, const DataDiverter& diverted, absl::string_view binary, size_t* binary_at,
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
  // "data" went to its sink as it was parsed; its place holds the sink's number.
  DataSink* sink = data->is_binary() ? diverted.sink(data->get_binary().subtype()) : nullptr;
  if (sink == nullptr) return absl::InternalError(absl::StrCat(what, ": \"data\" was not taken by its parser"));
  return sink->Finish(type, tensor->datatype(), *count, what, raw);
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
  // Bounded: no nesting bomb or node-dense body takes more than a small multiple of its size,
  // and the tensors' "data" go straight to their raw form (bounded_json.h).
  DataDiverter diverted;
  absl::StatusOr<json> parsed = bounded_json::Parse(text, bounded_json::Limits(), &diverted);
  if (!parsed.ok()) return parsed.status();
  const json& request = *parsed;
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
      if (absl::Status s = ParseInput(input, diverted, binary, &binary_at, &out); !s.ok()) return s;
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

namespace {

// A repository request's body: empty (or blanks), or a JSON object.
absl::StatusOr<json> ParseRepositoryBody(absl::string_view body) {
  if (body.find_first_not_of(" \t\r\n") == absl::string_view::npos) return json::object();
  absl::StatusOr<json> parsed = bounded_json::Parse(body);
  if (!parsed.ok()) return parsed.status();
  if (!parsed->is_object()) return absl::InvalidArgumentError("the request body must be a JSON object");
  return parsed;
}

}  // namespace

absl::StatusOr<inference::RepositoryIndexRequest> ParseRepositoryIndexRequest(absl::string_view body) {
  absl::StatusOr<json> parsed = ParseRepositoryBody(body);
  if (!parsed.ok()) return parsed.status();
  inference::RepositoryIndexRequest out;
  if (auto it = parsed->find("ready"); it != parsed->end()) {
    if (!it->is_boolean()) return absl::InvalidArgumentError("\"ready\" must be true or false");
    out.set_ready(it->get<bool>());
  }
  return out;
}

absl::Status ParseRepositoryParameters(
    absl::string_view body, google::protobuf::Map<std::string, inference::ModelRepositoryParameter>* out) {
  absl::StatusOr<json> parsed = ParseRepositoryBody(body);
  if (!parsed.ok()) return parsed.status();
  auto it = parsed->find("parameters");
  if (it == parsed->end()) return absl::OkStatus();
  if (!it->is_object()) return absl::InvalidArgumentError("\"parameters\" must be a JSON object");
  for (const auto& [key, value] : it->items()) {
    inference::ModelRepositoryParameter p;
    if (value.is_boolean()) {
      p.set_bool_param(value.get<bool>());
    } else if (value.is_number_integer()) {
      if (value.is_number_unsigned() && value.get<uint64_t>() > uint64_t{std::numeric_limits<int64_t>::max()}) {
        return absl::InvalidArgumentError("a repository parameter's integer is beyond int64");
      }
      p.set_int64_param(value.get<int64_t>());
    } else if (value.is_string()) {
      p.set_string_param(value.get<std::string>());
    } else {
      return absl::InvalidArgumentError(
          "a repository parameter's value must be a bool, an integer or a string");
    }
    (*out)[key] = std::move(p);
  }
  return absl::OkStatus();
}

std::string RepositoryIndexJson(const inference::RepositoryIndexResponse& index) {
  // Triton's: an array of {"name", "version", "state", "reason"}, the version and reason only
  // when there is one.
  json out = json::array();
  for (const auto& model : index.models()) {
    json entry = {{"name", model.name()}};
    if (!model.version().empty()) entry["version"] = model.version();
    entry["state"] = model.state();
    if (!model.reason().empty()) entry["reason"] = model.reason();
    out.push_back(std::move(entry));
  }
  return Dump(out);
}

}  // namespace elliptical::server::kserve
