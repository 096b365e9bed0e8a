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

// True when a scan of `jpeg` (which starts with the JPEG signature) decodes with a Huffman table
// that no DHT segment before it defined. stb leaves undefined tables uninitialised and decodes
// with them anyway: reads out of its tables' bounds, shifts by negative counts, and an assert in
// stbi__jpeg_huff_decode that Debian's libstb keeps, so one such file aborted the server. A
// baseline scan uses its components' DC and AC tables; a progressive scan its DC tables when it
// is a first DC scan (Ss = 0, Ah = 0), none for a DC refinement, and its AC tables when Ss > 0.
// Segments are found as HasOversizedHuffmanTable finds them.
inline bool UsesUndefinedHuffmanTable(absl::string_view jpeg) {
  const auto byte = [&](size_t i) -> int { return i < jpeg.size() ? static_cast<uint8_t>(jpeg[i]) : 0; };
  bool defined[2][4] = {};  // [DC, AC][table id]
  bool progressive = false;
  const auto define = [&](size_t at) {  // the DHT whose marker byte is at `at`
    int64_t left = (byte(at + 1) << 8 | byte(at + 2)) - 2;
    size_t pos = at + 3;
    while (left > 0 && pos < jpeg.size()) {
      const int table = byte(pos);
      if ((table >> 4) > 1 || (table & 15) > 3) return;  // stb refuses the segment
      int codes = 0;
      for (int i = 1; i <= 16; ++i) codes += byte(pos + i);
      defined[table >> 4][table & 15] = true;
      pos += 17 + codes;
      left -= 17 + codes;
    }
  };
  const auto undefined_in_scan = [&](size_t at) {  // the SOS whose marker byte is at `at`
    const int components = byte(at + 3);
    const size_t after = at + 4 + 2 * static_cast<size_t>(components);
    const int ss = byte(after), ah = byte(after + 2) >> 4;
    const bool uses_dc = !progressive || (ss == 0 && ah == 0);
    const bool uses_ac = !progressive || ss > 0;
    for (int c = 0; c < components; ++c) {
      const int tables = byte(at + 5 + 2 * static_cast<size_t>(c));
      const int dc = tables >> 4, ac = tables & 15;
      if (dc > 3 || ac > 3) return false;  // stb refuses the scan
      if ((uses_dc && !defined[0][dc]) || (uses_ac && !defined[1][ac])) return true;
    }
    return false;
  };
  size_t pos = 2;  // after the start-of-image marker
  while (pos < jpeg.size()) {
    while (pos < jpeg.size() && byte(pos) != 0xFF) ++pos;
    while (pos < jpeg.size() && byte(pos) == 0xFF) ++pos;
    if (pos >= jpeg.size()) return false;
    const int marker = byte(pos);
    if (marker == 0xDA) break;  // the first scan
    if (marker == 0x00 || marker == 0x01 || (marker >= 0xD0 && marker <= 0xD9)) {
      ++pos;
      continue;
    }
    if (marker == 0xC2) progressive = true;
    if (marker == 0xC4) define(pos);
    pos += 1 + (byte(pos + 1) << 8 | byte(pos + 2));
  }
  for (size_t i = pos; i < jpeg.size(); ++i) {
    if (i > 0 && byte(i - 1) != 0xFF) continue;
    if (byte(i) == 0xC4) define(i);
    if (byte(i) == 0xDA && undefined_in_scan(i)) return true;
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
