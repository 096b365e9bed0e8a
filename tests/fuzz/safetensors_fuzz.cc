// Arbitrary bytes as a safetensors weights file: the reader must refuse anything malformed with
// an error, and every tensor it accepts must lie inside the file with the size its dtype and
// shape need, its element count computed without wrapping around (weights.h makes a tensor of
// that shape over those bytes).
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "model/config/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using elliptical::model::DtypeSize;
  using elliptical::model::SafetensorsFile;
  auto file = SafetensorsFile::Parse(std::vector<uint8_t>(data, data + size), "fuzz.safetensors");
  if (!file.ok()) return 0;
  for (const auto& [name, entry] : file->entries()) {
    uint64_t bytes = DtypeSize(entry.dtype);
    bool overflow = false, empty = false;
    for (int64_t dim : entry.shape) {
      if (dim < 0) std::abort();  // a dimension above INT64_MAX came through as negative
      empty |= dim == 0;
      overflow |= __builtin_mul_overflow(bytes, static_cast<uint64_t>(dim), &bytes);
    }
    if (empty ? !entry.data.empty() : overflow || entry.data.size() != bytes) std::abort();
    // Touch every byte: ASan checks that the span lies inside the buffer the file owns.
    volatile uint8_t sum = 0;
    for (uint8_t b : entry.data) sum += b;
  }
  return 0;
}
