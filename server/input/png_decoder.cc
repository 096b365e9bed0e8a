#include "server/input/png_decoder.h"

#include <csetjmp>
#include <cstdio>
#include <cstring>

#include <png.h>

#include "absl/strings/str_cat.h"

namespace elliptical::server {
namespace {

// Ancillary chunks of the PNG specification that the pixels we hand on do not depend on: libpng
// skips them unread (their CRCs are still checked). tRNS among them: alpha is dropped anyway,
// as are colour-management chunks the models never saw in training either (gAMA, iCCP, ...).
constexpr png_byte kSkippedChunks[] = "bKGD\0cHRM\0eXIf\0gAMA\0hIST\0iCCP\0iTXt\0oFFs\0pCAL\0pHYs\0"
                                      "sBIT\0sCAL\0sPLT\0sRGB\0sTER\0tEXt\0tIME\0tRNS\0zTXt\0";
constexpr int kSkippedChunkCount = (sizeof(kSkippedChunks) - 1) / 5;

// The ancillary chunks libpng still reads (none that we know of; unknown ones are skipped) and
// any other bookkeeping: a cap per chunk and on their number.
constexpr png_alloc_size_t kMaxChunkBytes = 1 << 20;
constexpr png_uint_32 kMaxCachedChunks = 64;

// Plain C state only: libpng reports errors by longjmp (png_jmpbuf), which must not cross a C++
// object that has a destructor. What the jumps can skip lives here, in the caller's frame.
struct PngState {
  png_structp png;
  png_infop info;
  const unsigned char* data;
  size_t size;
  size_t at;
  char message[192];
};

[[noreturn]] void OnError(png_structp png, png_const_charp message) {
  auto* state = static_cast<PngState*>(png_get_error_ptr(png));
  std::snprintf(state->message, sizeof(state->message), "%s", message);
  png_longjmp(png, 1);
}

void OnWarning(png_structp, png_const_charp) {}  // libpng prints warnings to stderr otherwise

void ReadFromMemory(png_structp png, png_bytep out, png_size_t length) {
  auto* state = static_cast<PngState*>(png_get_io_ptr(png));
  if (length > state->size - state->at) {
    png_error(png, "the file ends before its image data does (truncated?)");
  }
  std::memcpy(out, state->data + state->at, length);
  state->at += length;
}

// Reads the chunks up to the image data and sets the transformations to 8-bit RGB. False with
// state->message on failure. No C++ objects with destructors in this frame (longjmp).
bool ReadHeader(PngState* state, png_uint_32* width, png_uint_32* height) {
  if (setjmp(png_jmpbuf(state->png))) return false;
  png_structp png = state->png;
  // Sides as declared, up to the format's own 2^31 - 1: the pixel count is what we limit, and it
  // is checked by the caller with a message naming it.
  png_set_user_limits(png, PNG_UINT_31_MAX, PNG_UINT_31_MAX);
  png_set_chunk_malloc_max(png, kMaxChunkBytes);
  png_set_chunk_cache_max(png, kMaxCachedChunks);
  // A damaged chunk is a damaged file, ancillary or not (libpng's default skips those).
  png_set_crc_action(png, PNG_CRC_ERROR_QUIT, PNG_CRC_ERROR_QUIT);
  png_set_keep_unknown_chunks(png, PNG_HANDLE_CHUNK_NEVER, nullptr, 0);
  png_set_keep_unknown_chunks(png, PNG_HANDLE_CHUNK_NEVER, kSkippedChunks, kSkippedChunkCount);
  png_set_read_fn(png, state, ReadFromMemory);
  png_read_info(png, state->info);
  *width = png_get_image_width(png, state->info);
  *height = png_get_image_height(png, state->info);
  return true;
}

// Any colour type and depth to 8-bit RGB, as the models take it: palettes and grey expanded,
// 16-bit samples cut to their high byte, alpha dropped (not blended: the colour as stored).
bool ReadRows(PngState* state, unsigned char* out, png_uint_32 width, png_uint_32 height) {
  if (setjmp(png_jmpbuf(state->png))) return false;
  png_structp png = state->png;
  const png_byte colour = png_get_color_type(png, state->info);
  if (colour == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
  if (colour == PNG_COLOR_TYPE_GRAY && png_get_bit_depth(png, state->info) < 8) {
    png_set_expand_gray_1_2_4_to_8(png);
  }
  png_set_strip_16(png);
  png_set_strip_alpha(png);
  if (colour == PNG_COLOR_TYPE_GRAY || colour == PNG_COLOR_TYPE_GRAY_ALPHA) png_set_gray_to_rgb(png);
  const int passes = png_set_interlace_handling(png);
  png_read_update_info(png, state->info);
  if (png_get_rowbytes(png, state->info) != static_cast<size_t>(width) * 3) {
    png_error(png, "the transformed rows are not 8-bit RGB");
  }
  for (int pass = 0; pass < passes; ++pass) {
    for (png_uint_32 y = 0; y < height; ++y) png_read_row(png, out + static_cast<size_t>(y) * width * 3, nullptr);
  }
  return true;
}

class PngReader {
 public:
  explicit PngReader(absl::string_view encoded) {
    state_.png = nullptr;
    state_.info = nullptr;
    state_.data = reinterpret_cast<const unsigned char*>(encoded.data());
    state_.size = encoded.size();
    state_.at = 0;
    std::strcpy(state_.message, "out of memory");
    state_.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &state_, OnError, OnWarning);
    if (state_.png) state_.info = png_create_info_struct(state_.png);
  }
  ~PngReader() {
    if (state_.png) png_destroy_read_struct(&state_.png, state_.info ? &state_.info : nullptr, nullptr);
  }
  PngReader(const PngReader&) = delete;
  PngReader& operator=(const PngReader&) = delete;

  absl::StatusOr<ImageSize> ReadSize() {
    if (!state_.info || !ReadHeader(&state_, &width_, &height_)) {
      return absl::InvalidArgumentError(absl::StrCat("cannot read the PNG header: ", state_.message));
    }
    return ImageSize{width_, height_};
  }

  absl::StatusOr<model::RgbImage> Decode() {
    model::RgbImage image;
    image.width = static_cast<int>(width_);
    image.height = static_cast<int>(height_);
    image.pixels.resize(static_cast<size_t>(width_) * height_ * 3);
    if (!ReadRows(&state_, image.pixels.data(), width_, height_)) {
      return absl::InvalidArgumentError(absl::StrCat("cannot decode the PNG image: ", state_.message));
    }
    return image;
  }

 private:
  PngState state_;
  png_uint_32 width_ = 0, height_ = 0;
};

}  // namespace

absl::StatusOr<ImageSize> ReadPngSize(absl::string_view encoded) { return PngReader(encoded).ReadSize(); }

absl::StatusOr<model::RgbImage> DecodePng(absl::string_view encoded, const ImageLimits& limits) {
  PngReader png(encoded);
  absl::StatusOr<ImageSize> size = png.ReadSize();
  if (!size.ok()) return size.status();
  if (absl::Status s = CheckImageLimits(size->width, size->height, limits); !s.ok()) return s;
  return png.Decode();
}

}  // namespace elliptical::server
