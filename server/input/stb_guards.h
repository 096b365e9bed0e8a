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

namespace stb_jpeg {

// stb reads a 0 for every byte past the end.
inline int Byte(absl::string_view jpeg, size_t i) { return i < jpeg.size() ? static_cast<uint8_t>(jpeg[i]) : 0; }

// Visits the segments of `jpeg` as stb finds them, `visit(marker, at)` with `at` the marker
// byte's offset, and returns true as soon as a visit does. Before the first scan: segment by
// segment, skipping payloads by their lengths and resuming at the next 0xFF after junk; from the
// first scan on (SOS included): every byte that follows a 0xFF.
template <typename Visit>
bool AnySegment(absl::string_view jpeg, Visit visit) {
  size_t pos = 2;  // after the start-of-image marker
  while (pos < jpeg.size()) {
    while (pos < jpeg.size() && Byte(jpeg, pos) != 0xFF) ++pos;  // junk: resume at the next 0xFF
    while (pos < jpeg.size() && Byte(jpeg, pos) == 0xFF) ++pos;  // fill bytes
    if (pos >= jpeg.size()) return false;
    const int marker = Byte(jpeg, pos);
    if (marker == 0xDA) break;  // the first scan
    if (marker == 0x00 || marker == 0x01 || (marker >= 0xD0 && marker <= 0xD9)) {
      ++pos;  // markers without a payload
      continue;
    }
    if (visit(marker, pos)) return true;
    pos += 1 + (Byte(jpeg, pos + 1) << 8 | Byte(jpeg, pos + 2));  // the marker byte, then its segment
  }
  for (size_t i = pos; i < jpeg.size(); ++i) {
    if (i > 0 && Byte(jpeg, i - 1) != 0xFF) continue;
    if (visit(Byte(jpeg, i), i)) return true;
  }
  return false;
}

// Visits the tables of the DHT segment whose marker byte is at `at` as stb reads them,
// `table(class, id, codes)` (class 0 DC, 1 AC), until one that stb refuses; true as soon as a
// visit returns true.
template <typename Table>
bool AnyHuffmanTable(absl::string_view jpeg, size_t at, Table table) {
  int64_t left = (Byte(jpeg, at + 1) << 8 | Byte(jpeg, at + 2)) - 2;
  size_t pos = at + 3;
  while (left > 0 && pos < jpeg.size()) {
    const int spec = Byte(jpeg, pos);
    if ((spec >> 4) > 1 || (spec & 15) > 3) return false;  // stb refuses the segment
    int codes = 0;
    for (int i = 1; i <= 16; ++i) codes += Byte(jpeg, pos + i);
    if (table(spec >> 4, spec & 15, codes)) return true;
    pos += 17 + codes;
    left -= 17 + codes;
  }
  return false;
}

}  // namespace stb_jpeg

// True when `jpeg` (which starts with the JPEG signature) holds a Huffman table of more than 256
// codes that stb_image would read.
inline bool HasOversizedHuffmanTable(absl::string_view jpeg) {
  return stb_jpeg::AnySegment(jpeg, [&](int marker, size_t at) {
    return marker == 0xC4 && stb_jpeg::AnyHuffmanTable(jpeg, at, [](int, int, int codes) { return codes > 256; });
  });
}

// True when a scan of `jpeg` (which starts with the JPEG signature) decodes with a Huffman table
// that no DHT segment before it defined. stb leaves undefined tables uninitialised and decodes
// with them anyway: reads out of its tables' bounds, shifts by negative counts, and an assert in
// stbi__jpeg_huff_decode that Debian's libstb keeps, so one such file aborted the server. A
// baseline scan uses its components' DC and AC tables; a progressive scan its DC tables when it
// is a first DC scan (Ss = 0, Ah = 0), none for a DC refinement, and its AC tables when Ss > 0.
inline bool UsesUndefinedHuffmanTable(absl::string_view jpeg) {
  const auto byte = [&](size_t i) { return stb_jpeg::Byte(jpeg, i); };
  bool defined[2][4] = {};  // [DC, AC][table id]
  bool progressive = false;
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
  bool scanning = false;  // from the first scan on, a frame marker no longer counts
  return stb_jpeg::AnySegment(jpeg, [&](int marker, size_t at) {
    if (marker == 0xDA) scanning = true;
    if (marker == 0xC2 && !scanning) progressive = true;
    if (marker == 0xC4) {
      stb_jpeg::AnyHuffmanTable(jpeg, at, [&](int table_class, int id, int) {
        defined[table_class][id] = true;
        return false;
      });
    }
    return marker == 0xDA && undefined_in_scan(at);
  });
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
