#include "model/config/safetensors.h"

#include <fstream>
#include <iterator>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace elliptical::model {
namespace {

// Guards against a corrupt length field asking for gigabytes of JSON.
constexpr uint64_t kMaxHeaderBytes = 100ull << 20;

absl::StatusOr<SafetensorsDtype> ParseDtype(const std::string& name) {
  static const std::map<std::string, SafetensorsDtype> kByName = {
      {"F32", SafetensorsDtype::kF32}, {"F16", SafetensorsDtype::kF16},
      {"BF16", SafetensorsDtype::kBF16}, {"F64", SafetensorsDtype::kF64},
      {"I64", SafetensorsDtype::kI64}, {"I32", SafetensorsDtype::kI32},
      {"U8", SafetensorsDtype::kU8}, {"BOOL", SafetensorsDtype::kBool}};
  auto it = kByName.find(name);
  if (it == kByName.end()) {
    return absl::InvalidArgumentError(absl::StrCat("unsupported dtype \"", name, "\""));
  }
  return it->second;
}

}  // namespace

absl::string_view DtypeName(SafetensorsDtype dtype) {
  switch (dtype) {
    case SafetensorsDtype::kF32: return "F32";
    case SafetensorsDtype::kF16: return "F16";
    case SafetensorsDtype::kBF16: return "BF16";
    case SafetensorsDtype::kF64: return "F64";
    case SafetensorsDtype::kI64: return "I64";
    case SafetensorsDtype::kI32: return "I32";
    case SafetensorsDtype::kU8: return "U8";
    case SafetensorsDtype::kBool: return "BOOL";
  }
  return "?";
}

size_t DtypeSize(SafetensorsDtype dtype) {
  switch (dtype) {
    case SafetensorsDtype::kF64:
    case SafetensorsDtype::kI64: return 8;
    case SafetensorsDtype::kF32:
    case SafetensorsDtype::kI32: return 4;
    case SafetensorsDtype::kF16:
    case SafetensorsDtype::kBF16: return 2;
    case SafetensorsDtype::kU8:
    case SafetensorsDtype::kBool: return 1;
  }
  return 0;
}

absl::StatusOr<SafetensorsFile> SafetensorsFile::Open(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open weights file ", path));
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return Parse(std::move(bytes), path);
}

absl::StatusOr<SafetensorsFile> SafetensorsFile::Parse(std::vector<uint8_t> bytes,
                                                       const std::string& origin) {
  auto error = [&](absl::string_view what) {
    return absl::InvalidArgumentError(absl::StrCat(origin, ": not a valid safetensors file: ", what));
  };
  if (bytes.size() < 8) return error("shorter than its 8-byte header length");
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | bytes[i];
  if (header_len > kMaxHeaderBytes || header_len > bytes.size() - 8) {
    return error(absl::StrCat("header length ", header_len, " exceeds the file (", bytes.size(),
                              " bytes)"));
  }
  nlohmann::json header = nlohmann::json::parse(bytes.begin() + 8, bytes.begin() + 8 + header_len,
                                                /*cb=*/nullptr, /*allow_exceptions=*/false);
  if (header.is_discarded() || !header.is_object()) return error("header is not a JSON object");

  SafetensorsFile file;
  const uint8_t* data_begin = bytes.data() + 8 + header_len;
  const uint64_t data_size = bytes.size() - 8 - header_len;
  for (const auto& [name, desc] : header.items()) {
    if (name == "__metadata__") {
      if (!desc.is_object()) return error("__metadata__ is not an object");
      for (const auto& [key, value] : desc.items()) {
        if (value.is_string()) file.metadata_[key] = value.get<std::string>();
      }
      continue;
    }
    const std::string where = absl::StrCat("tensor \"", name, "\": ");
    if (!desc.is_object() || !desc.contains("dtype") || !desc.contains("shape") ||
        !desc.contains("data_offsets") || !desc["dtype"].is_string() ||
        !desc["shape"].is_array() || !desc["data_offsets"].is_array() ||
        desc["data_offsets"].size() != 2) {
      return error(where + "needs dtype, shape and data_offsets [begin, end]");
    }
    auto dtype = ParseDtype(desc["dtype"].get<std::string>());
    if (!dtype.ok()) return error(where + std::string(dtype.status().message()));
    SafetensorsEntry entry;
    entry.dtype = *dtype;
    // The byte count of dtype x shape, refused when it does not fit 64 bits: a wrapped product
    // would pass the size check below for a tensor far larger than its bytes.
    uint64_t bytes = DtypeSize(entry.dtype);
    bool overflow = false, empty = false;
    for (const auto& dim : desc["shape"]) {
      if (!dim.is_number_unsigned() || dim.get<uint64_t>() > uint64_t{INT64_MAX}) {
        return error(where + "shape has a dimension that is not an integer in [0, 2^63)");
      }
      entry.shape.push_back(dim.get<int64_t>());
      empty |= dim.get<uint64_t>() == 0;
      overflow |= __builtin_mul_overflow(bytes, dim.get<uint64_t>(), &bytes);
    }
    if (empty) bytes = 0;
    if (overflow && !empty) {
      return error(absl::StrCat(where, "shape [", absl::StrJoin(entry.shape, ", "), "] of ",
                                DtypeName(entry.dtype), " needs more than 2^64 bytes"));
    }
    const auto& offsets = desc["data_offsets"];
    if (!offsets[0].is_number_unsigned() || !offsets[1].is_number_unsigned()) {
      return error(where + "data_offsets are not non-negative integers");
    }
    const uint64_t begin = offsets[0].get<uint64_t>();
    const uint64_t end = offsets[1].get<uint64_t>();
    if (begin > end || end > data_size) {
      return error(absl::StrCat(where, "data_offsets [", begin, ", ", end,
                                "] fall outside the data section of ", data_size, " bytes"));
    }
    if (end - begin != bytes) {
      return error(absl::StrCat(where, "holds ", end - begin, " bytes but shape [",
                                absl::StrJoin(entry.shape, ", "), "] of ",
                                DtypeName(entry.dtype), " needs ", bytes));
    }
    entry.data = absl::MakeConstSpan(data_begin + begin, end - begin);
    file.entries_.emplace(name, std::move(entry));
  }
  // The spans point into the buffer; a heap-held vector keeps them valid across moves.
  file.bytes_ = std::make_shared<std::vector<uint8_t>>(std::move(bytes));
  return file;
}

}  // namespace elliptical::model
