// Reader for the safetensors weight format: an 8-byte little-endian header length, a JSON
// header {name: {dtype, shape, data_offsets}}, then raw little-endian row-major data.
//
// No LibTorch here on purpose: parsing and validation are plain C++, so the rules about what a
// well-formed file is are tested and compiled apart from the model code. weights.h turns the
// entries into tensors.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace elliptical::model {

// Element types of the format that the loader converts from.
enum class SafetensorsDtype { kF32, kF16, kBF16, kF64, kI64, kI32, kU8, kBool };

absl::string_view DtypeName(SafetensorsDtype dtype);
size_t DtypeSize(SafetensorsDtype dtype);

struct SafetensorsEntry {
  SafetensorsDtype dtype;
  std::vector<int64_t> shape;
  // Points into the file's memory; valid while the SafetensorsFile lives.
  absl::Span<const uint8_t> data;
};

class SafetensorsFile {
 public:
  // Reads and validates the whole file: header syntax, known dtypes, offsets inside the data
  // section, and byte sizes that match dtype x shape. The error names the file and the tensor.
  static absl::StatusOr<SafetensorsFile> Open(const std::string& path);
  // Same rules on bytes already in memory (takes ownership).
  static absl::StatusOr<SafetensorsFile> Parse(std::vector<uint8_t> bytes,
                                               const std::string& origin);

  // Sorted by name.
  const std::map<std::string, SafetensorsEntry>& entries() const { return entries_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  std::shared_ptr<std::vector<uint8_t>> bytes_;
  std::map<std::string, SafetensorsEntry> entries_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace elliptical::model
