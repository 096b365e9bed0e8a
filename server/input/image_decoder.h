// Turns what a client sends (PNG/JPEG/WebP bytes, or raw pixels) into RGB8 pixels for the models.
// No gRPC and no LibTorch here: plain bytes in, model::RgbImage out, errors a user can act on.
// The formats are decoded by libpng, libjpeg-turbo and libwebp (png_decoder.h, jpeg_decoder.h,
// webp_decoder.h). Thread-safe: every call has decoder state of its own.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "model/api/image.h"

namespace elliptical::server {

struct ImageLimits {
  // Decoding a 1 MB file can ask for gigabytes of pixels; refuse before allocating.
  int64_t max_pixels = 64ll << 20;
};

struct ImageSize {
  int64_t width = 0;
  int64_t height = 0;
};

// INVALID_ARGUMENT unless a width x height image has pixels and at most `max_pixels` of them,
// checked without a product that could overflow. The message ("is 9000x9000 = 8.1e+07 pixels;
// the limit is ... pixels per image", "has no pixels (0x5)") reads after the image's name.
absl::Status CheckImageSize(int64_t width, int64_t height, int64_t max_pixels);

// CheckImageSize against `limits`, its message starting "image ": what every decoder checks a
// header's size with before it allocates the pixels.
absl::Status CheckImageLimits(int64_t width, int64_t height, const ImageLimits& limits);

// The size a PNG, JPEG or WebP file declares in its header, read without decoding: requests are
// checked against their pixel budgets before any pixel is allocated.
absl::StatusOr<ImageSize> ReadImageSize(absl::string_view encoded);

// PNG (any colour type and depth: grey, grey+alpha, RGB, RGBA, palette, 16-bit), JPEG (grey,
// YCbCr, RGB, CMYK; baseline, progressive or arithmetic-coded) or WebP (lossy or lossless, one
// frame), converted to 8-bit RGB: alpha dropped, not blended; 16-bit samples cut to their high
// byte. The header's size is checked against `limits` before the pixels are allocated; a damaged
// or truncated file is refused (INVALID_ARGUMENT naming the format and what is wrong).
absl::StatusOr<model::RgbImage> DecodeImage(absl::string_view encoded, const ImageLimits& limits);

// Interleaved 8-bit pixels with 1, 3 or 4 channels (alpha is dropped).
absl::StatusOr<model::RgbImage> ImageFromPixels(int64_t width, int64_t height, int64_t channels,
                                                absl::string_view pixels,
                                                const ImageLimits& limits);

}  // namespace elliptical::server
