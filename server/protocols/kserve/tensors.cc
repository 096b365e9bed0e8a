#include "server/protocols/kserve/tensors.h"

#include <limits>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace elliptical::server::kserve {

std::string Quoted(absl::string_view name) {
  constexpr size_t kMax = 64;
  std::string shown = absl::CHexEscape(name.substr(0, kMax));
  return absl::StrCat("\"", shown, name.size() > kMax ? "...\"" : "\"");
}

absl::Status Invalid(absl::string_view what, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(what, ": ", why));
}

std::string ShapeString(const google::protobuf::RepeatedField<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

void AppendLe32(uint32_t v, std::string* out) {
  for (int i = 0; i < 4; ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}

absl::Status ImagesDifferInSize(int64_t first_w, int64_t first_h, int64_t w, int64_t h) {
  return absl::InvalidArgumentError(absl::StrCat(
      "input \"image\": the images differ in size (", first_w, "x", first_h, " and ", w, "x", h,
      "), and the output mask [N, H, W] holds images of one size: send them in separate requests"));
}

std::vector<int64_t> TensorInputShape(const ModelSnapshot& model) {
  const bool classifier = model.family && *model.family == model::ModelFamily::kImageClassifier;
  const int64_t side = classifier && model.description ? model.description->image_size : -1;
  return {-1, 3, side, side};
}

int64_t NumClasses(const ModelSnapshot& model) {
  return model.description ? static_cast<int64_t>(model.description->labels.size()) : 0;
}

absl::StatusOr<int64_t> ElementCount(const google::protobuf::RepeatedField<int64_t>& shape,
                                     absl::string_view what) {
  int64_t product = 1;
  for (int64_t d : shape) {
    if (d < 0) return Invalid(what, absl::StrCat("shape ", ShapeString(shape), " has a negative dimension"));
    if (d != 0 && product > std::numeric_limits<int64_t>::max() / d) {
      return Invalid(what, absl::StrCat("shape ", ShapeString(shape), " has more elements than INT64_MAX"));
    }
    product *= d;
  }
  return product;
}

absl::StatusOr<std::vector<absl::string_view>> SplitRawBytes(absl::string_view raw, int64_t count,
                                                             absl::string_view what) {
  // Each element takes at least its 4-byte length: a larger count cannot fit (and is not
  // allocated for).
  if (count < 0 || static_cast<uint64_t>(count) > raw.size() / 4) {
    return Invalid(what, absl::StrCat("raw contents of ", raw.size(), " bytes cannot hold ", count,
                                      " BYTES elements (each a 4-byte length and its bytes)"));
  }
  std::vector<absl::string_view> elements;
  elements.reserve(static_cast<size_t>(count));
  size_t at = 0;
  for (int64_t i = 0; i < count; ++i) {
    if (raw.size() - at < 4) {
      return Invalid(what, absl::StrCat("raw contents end inside the length of element ", i));
    }
    const auto* p = reinterpret_cast<const unsigned char*>(raw.data() + at);
    const uint32_t length = uint32_t{p[0]} | uint32_t{p[1]} << 8 | uint32_t{p[2]} << 16 | uint32_t{p[3]} << 24;
    at += 4;
    if (length > raw.size() - at) {
      return Invalid(what, absl::StrCat("element ", i, " has a length of ", length, " bytes; only ",
                                        raw.size() - at, " remain"));
    }
    elements.push_back(raw.substr(at, length));
    at += length;
  }
  if (at != raw.size()) {
    return Invalid(what, absl::StrCat("raw contents have ", raw.size() - at, " bytes after the ", count,
                                      " elements of the shape"));
  }
  return elements;
}

std::string JoinRawBytes(const std::vector<std::string>& elements) {
  size_t size = 0;
  for (const std::string& e : elements) size += 4 + e.size();
  std::string raw;
  raw.reserve(size);
  for (const std::string& e : elements) {
    AppendLe32(static_cast<uint32_t>(e.size()), &raw);
    raw += e;
  }
  return raw;
}

}  // namespace elliptical::server::kserve
