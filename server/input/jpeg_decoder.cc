#include "server/input/jpeg_decoder.h"

#include <algorithm>
#include <csetjmp>
#include <cstdio>  // jpeglib.h needs FILE and size_t declared first
#include <cstring>
#include <vector>

#include <jerror.h>
#include <jpeglib.h>

#include "absl/strings/str_cat.h"

namespace elliptical::server {
namespace {

// A progressive JPEG's scans each pass over the whole coefficient buffer, and libjpeg-turbo
// accepts any number of them: a few kilobytes of tiny scans over a large image keep a thread
// busy far longer than any real photo does.
// Encoders write about 10 (Pillow, libjpeg's default script) and rarely more than a few dozen.
constexpr int kMaxScans = 100;

// Plain C state only: libjpeg reports errors by longjmp, which must not cross a C++ object that
// has a destructor. Everything the jumps can skip lives here, in the caller's frame.
struct JpegState {
  jpeg_decompress_struct info;
  jpeg_error_mgr error;
  jpeg_progress_mgr progress;
  std::jmp_buf jump;
  bool created;
  char message[JMSG_LENGTH_MAX];
};

JpegState* StateOf(j_common_ptr info) {
  // `info` is the first member of JpegState, a standard-layout struct: the same address.
  return reinterpret_cast<JpegState*>(info);
}

[[noreturn]] void OnError(j_common_ptr info) {
  JpegState* state = StateOf(info);
  (*info->err->format_message)(info, state->message);
  std::longjmp(state->jump, 1);
}

// libjpeg writes warnings to stderr by default. Corrupt or missing entropy-coded data is only a
// warning to it (it fills the rest of the image with grey); for a model's input that is a wrong
// picture, so those stop the decode: the end of the file, and every "Corrupt JPEG data" warning
// (bad Huffman or arithmetic codes, lost restart markers, a segment cut short) but junk bytes
// between segments, as some cameras write, and a damaged ICC profile, which we do not read.
// Warnings about metadata (JFIF version, Adobe transform) let it go on.
void OnMessage(j_common_ptr info, int level) {
  if (level >= 0) return;  // trace messages
  const int code = info->err->msg_code;
  if (code == JWRN_JPEG_EOF) {
    std::strcpy(StateOf(info)->message, "the file ends before its image data does (truncated?)");
    std::longjmp(StateOf(info)->jump, 1);
  }
  if (code == JWRN_EXTRANEOUS_DATA || code == JWRN_BOGUS_ICC) return;
  const char* text = code > 0 && code <= info->err->last_jpeg_message ? info->err->jpeg_message_table[code] : nullptr;
  if (code == JWRN_NOT_SEQUENTIAL || (text && std::strncmp(text, "Corrupt JPEG data", 17) == 0)) OnError(info);
}

void OnProgress(j_common_ptr info) {
  if (info->is_decompressor &&
      reinterpret_cast<j_decompress_ptr>(info)->input_scan_number > kMaxScans) {
    std::snprintf(StateOf(info)->message, JMSG_LENGTH_MAX, "more than %d progressive scans",
                  kMaxScans);
    std::longjmp(StateOf(info)->jump, 1);
  }
}

// Creates the decompressor over `data` and reads the markers up to the first scan. False with
// state->message on failure. No C++ objects with destructors in this frame (longjmp).
bool ReadHeader(JpegState* state, const unsigned char* data, unsigned long size) {
  state->info.err = jpeg_std_error(&state->error);
  state->error.error_exit = OnError;
  state->error.emit_message = OnMessage;
  state->message[0] = '\0';
  if (setjmp(state->jump)) return false;
  jpeg_create_decompress(&state->info);
  state->created = true;
  state->progress.progress_monitor = OnProgress;
  state->info.progress = &state->progress;
  jpeg_mem_src(&state->info, data, size);
  jpeg_read_header(&state->info, /*require_image=*/TRUE);
  return true;
}

// Decodes the rows into `out` (`height` rows of `width` * 3 bytes, the header's size). CMYK and
// YCCK files come out of libjpeg as CMYK rows of width * 4 bytes, which `cmyk_row` holds while
// each is converted.
bool ReadRows(JpegState* state, unsigned char* out, unsigned char* cmyk_row, JDIMENSION width,
              JDIMENSION height, long max_memory) {
  if (setjmp(state->jump)) return false;
  jpeg_decompress_struct* info = &state->info;
  const bool cmyk = info->jpeg_color_space == JCS_CMYK || info->jpeg_color_space == JCS_YCCK;
  info->out_color_space = cmyk ? JCS_CMYK : JCS_RGB;
  // A multi-scan file's coefficients are held whole (about 2 bytes per sample); past this cap
  // libjpeg would need a backing store, which this build refuses (JERR_NO_BACKING_STORE).
  info->mem->max_memory_to_use = max_memory;
  jpeg_start_decompress(info);
  // No scaling is asked, so the output is the header's size; checked before the first row lands
  // in a buffer sized from the header.
  if (info->output_width != width || info->output_height != height ||
      info->output_components != (cmyk ? 4 : 3)) {
    std::strcpy(state->message, "the decoder's output does not have the header's size");
    return false;
  }
  while (info->output_scanline < info->output_height) {
    unsigned char* row = out + static_cast<size_t>(info->output_scanline) * width * 3;
    JSAMPROW target = cmyk ? cmyk_row : row;
    jpeg_read_scanlines(info, &target, 1);
    if (cmyk) {
      // Adobe's CMYK JPEGs store inverted inks (libjpeg passes them through as stored): each
      // channel is then (255 - ink) * (255 - black) / 255 = stored * stored_black / 255.
      for (JDIMENSION x = 0; x < width; ++x) {
        const unsigned k = cmyk_row[x * 4 + 3];
        for (int c = 0; c < 3; ++c) row[x * 3 + c] = static_cast<unsigned char>((cmyk_row[x * 4 + c] * k + 127) / 255);
      }
    }
  }
  return true;
}

class JpegDecompressor {
 public:
  JpegDecompressor() { state_.created = false; }
  ~JpegDecompressor() {
    if (state_.created) jpeg_destroy_decompress(&state_.info);
  }
  JpegDecompressor(const JpegDecompressor&) = delete;
  JpegDecompressor& operator=(const JpegDecompressor&) = delete;

  absl::StatusOr<ImageSize> ReadSize(absl::string_view encoded) {
    if (!ReadHeader(&state_, reinterpret_cast<const unsigned char*>(encoded.data()),
                    static_cast<unsigned long>(encoded.size()))) {
      return absl::InvalidArgumentError(absl::StrCat("cannot read the JPEG header: ", state_.message));
    }
    return ImageSize{state_.info.image_width, state_.info.image_height};
  }

  absl::StatusOr<model::RgbImage> Decode(const ImageSize& size, const ImageLimits& limits) {
    const J_COLOR_SPACE space = state_.info.jpeg_color_space;
    const bool cmyk = space == JCS_CMYK || space == JCS_YCCK;
    if (space == JCS_UNKNOWN || (state_.info.num_components != 1 && state_.info.num_components != 3 && !cmyk)) {
      return absl::InvalidArgumentError(absl::StrCat("cannot decode the JPEG image: its ",
                                                     state_.info.num_components,
                                                     " colour components are neither grey, RGB, YCbCr nor CMYK"));
    }
    model::RgbImage image;
    image.width = static_cast<int>(size.width);
    image.height = static_cast<int>(size.height);
    image.pixels.resize(static_cast<size_t>(size.width) * static_cast<size_t>(size.height) * 3);
    std::vector<unsigned char> cmyk_row(cmyk ? static_cast<size_t>(size.width) * 4 : 0);
    // Room for the whole coefficient buffer of an allowed image (4 components at 2 bytes, with
    // MCU padding) and libjpeg's row buffers.
    const long max_memory = static_cast<long>(std::min<int64_t>(limits.max_pixels, int64_t{1} << 36) * 12 + (16 << 20));
    if (!ReadRows(&state_, image.pixels.data(), cmyk_row.data(), static_cast<JDIMENSION>(size.width),
                  static_cast<JDIMENSION>(size.height), max_memory)) {
      return absl::InvalidArgumentError(absl::StrCat("cannot decode the JPEG image: ", state_.message));
    }
    return image;
  }

 private:
  JpegState state_;
};

}  // namespace

absl::StatusOr<ImageSize> ReadJpegSize(absl::string_view encoded) {
  JpegDecompressor jpeg;
  return jpeg.ReadSize(encoded);
}

absl::StatusOr<model::RgbImage> DecodeJpeg(absl::string_view encoded, const ImageLimits& limits) {
  JpegDecompressor jpeg;
  absl::StatusOr<ImageSize> size = jpeg.ReadSize(encoded);
  if (!size.ok()) return size.status();
  if (absl::Status s = CheckImageLimits(size->width, size->height, limits); !s.ok()) return s;
  return jpeg.Decode(*size, limits);
}

}  // namespace elliptical::server
