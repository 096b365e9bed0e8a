// Checks that run on a client's encoded image before Debian's stb_image (v2.27, libstb
// 0.0~git20220908) reads it, for two flaws in that version found by
// tests/fuzz/image_decoder_fuzz.cc (its regressions/image_decoder/ keeps the inputs). Each check
// reads the file the way stb does and refuses only what stb would mishandle.
//
// 1. JPEG: stb trusts the code counts of a Huffman table; a DHT segment whose 16 counts add up
//    to more than 256 writes past the decoder's tables (heap memory of the process), in stbi_info
//    as well as in stbi_load. Later stb releases refuse such a table themselves. Before the first
//    scan (SOS) stb walks the file segment by segment, skipping each payload by its length and,
//    after junk, resuming at the next 0xFF; from the first scan on it finds markers inside and
//    between scans. So the same walk up to the first SOS, and from there every FF C4 byte pair is
//    read as a DHT segment (a superset: entropy-coded data cannot hold one, a 0xFF there is
//    followed by 0x00 or a restart marker).
// 2. PNG: stb grows its buffer to an IDAT chunk's declared length before checking that the bytes
//    are there, so a 100-byte file asks for up to 2 GiB. A chunk whose length runs past the end of
//    the file is refused (stb would fail on it after the allocation).
#pragma once

#include <cstddef>
#include <cstdint>

#include "absl/strings/string_view.h"

namespace elliptical::server {

// True when `jpeg` (which starts with the JPEG signature) holds a Huffman table of more than 256
// codes that stb_image would read.
inline bool HasOversizedHuffmanTable(absl::string_view jpeg) {
  // stb reads a 0 for every byte past the end.
  const auto byte = [&](size_t i) -> int { return i < jpeg.size() ? static_cast<uint8_t>(jpeg[i]) : 0; };
  // The DHT segment whose marker byte (C4) is at `at`, its tables read as stb reads them.
  const auto oversized = [&](size_t at) {
    int64_t left = (byte(at + 1) << 8 | byte(at + 2)) - 2;
    size_t pos = at + 3;
    while (left > 0 && pos < jpeg.size()) {
      const int table = byte(pos);
      if ((table >> 4) > 1 || (table & 15) > 3) return false;  // stb refuses the segment
      int codes = 0;
      for (int i = 1; i <= 16; ++i) codes += byte(pos + i);
      if (codes > 256) return true;
      pos += 17 + codes;
      left -= 17 + codes;
    }
    return false;
  };
  size_t pos = 2;  // after the start-of-image marker
  while (pos < jpeg.size()) {
    while (pos < jpeg.size() && byte(pos) != 0xFF) ++pos;  // junk: resume at the next 0xFF
    while (pos < jpeg.size() && byte(pos) == 0xFF) ++pos;  // fill bytes
    if (pos >= jpeg.size()) return false;
    const int marker = byte(pos);
    if (marker == 0xDA) break;  // the first scan
    if (marker == 0x00 || marker == 0x01 || (marker >= 0xD0 && marker <= 0xD9)) {
      ++pos;  // markers without a payload
      continue;
    }
    if (marker == 0xC4 && oversized(pos)) return true;
    pos += 1 + (byte(pos + 1) << 8 | byte(pos + 2));  // the marker byte, then its segment
  }
  for (size_t i = pos; i + 1 < jpeg.size(); ++i) {
    if (byte(i) == 0xFF && byte(i + 1) == 0xC4 && oversized(i + 1)) return true;
  }
  return false;
}

// True when `png` (which starts with the PNG signature) holds a chunk longer than the bytes that
// follow its header.
inline bool HasPngChunkBeyondEnd(absl::string_view png) {
  const auto be32 = [&](size_t i) {
    return uint64_t{static_cast<uint8_t>(png[i])} << 24 | uint64_t{static_cast<uint8_t>(png[i + 1])} << 16 |
           uint64_t{static_cast<uint8_t>(png[i + 2])} << 8 | uint64_t{static_cast<uint8_t>(png[i + 3])};
  };
  size_t pos = 8;  // after the signature
  while (pos + 8 <= png.size()) {
    const uint64_t length = be32(pos);
    if (length > png.size() - pos - 8) return true;
    if (png.substr(pos + 4, 4) == "IEND") return false;
    pos += 8 + length + 4;  // header, data, CRC
  }
  return false;
}

}  // namespace elliptical::server
