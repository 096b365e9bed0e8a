#include "server/input/image_decoder.h"

#include "absl/strings/str_cat.h"
#include "server/input/jpeg_decoder.h"
#include "server/input/png_decoder.h"
#include "server/input/webp_decoder.h"

namespace elliptical::server {
namespace {

enum class Format { kPng, kJpeg, kWebp };

absl::StatusOr<Format> FormatOf(absl::string_view encoded) {
  if (encoded.empty()) return absl::InvalidArgumentError("image bytes are empty");
  if (encoded.size() >= 8 && encoded.substr(0, 8) == "\x89PNG\r\n\x1a\n") return Format::kPng;
  if (encoded.size() >= 3 && encoded.substr(0, 3) == "\xff\xd8\xff") return Format::kJpeg;
  if (encoded.size() >= 12 && encoded.substr(0, 4) == "RIFF" && encoded.substr(8, 4) == "WEBP") return Format::kWebp;
  return absl::InvalidArgumentError(
      "image bytes are not a PNG or JPEG or WebP file (no PNG, JPEG or WebP signature at the start)");
}

}  // namespace

absl::Status CheckImageLimits(int64_t width, int64_t height, const ImageLimits& limits) {
  absl::Status s = CheckImageSize(width, height, limits.max_pixels);
  if (s.ok()) return s;
  return absl::InvalidArgumentError(absl::StrCat("image ", s.message()));
}

absl::Status CheckImageSize(int64_t width, int64_t height, int64_t max_pixels) {
  if (width <= 0 || height <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("has no pixels (", width, "x", height, ")"));
  }
  // Dividing, not multiplying: two client-chosen uint32 sides can overflow an int64 product
  // into a small number that would pass. width <= floor(max / height) is width * height <= max.
  if (width > max_pixels / height) {
    const double pixels = static_cast<double>(width) * static_cast<double>(height);  // cannot overflow
    return absl::InvalidArgumentError(absl::StrCat("is ", width, "x", height, " = ", pixels, " pixels; the limit is ",
                                                   max_pixels, " pixels per image"));
  }
  return absl::OkStatus();
}

absl::StatusOr<ImageSize> ReadImageSize(absl::string_view encoded) {
  absl::StatusOr<Format> format = FormatOf(encoded);
  if (!format.ok()) return format.status();
  switch (*format) {
    case Format::kPng: return ReadPngSize(encoded);
    case Format::kJpeg: return ReadJpegSize(encoded);
    case Format::kWebp: return ReadWebpSize(encoded);
  }
  return absl::InternalError("unknown image format");
}

absl::StatusOr<model::RgbImage> DecodeImage(absl::string_view encoded, const ImageLimits& limits) {
  absl::StatusOr<Format> format = FormatOf(encoded);
  if (!format.ok()) return format.status();
  switch (*format) {
    case Format::kPng: return DecodePng(encoded, limits);
    case Format::kJpeg: return DecodeJpeg(encoded, limits);
    case Format::kWebp: return DecodeWebp(encoded, limits);
  }
  return absl::InternalError("unknown image format");
}

absl::StatusOr<model::RgbImage> ImageFromPixels(int64_t width, int64_t height, int64_t channels,
                                                absl::string_view pixels,
                                                const ImageLimits& limits) {
  if (absl::Status s = CheckImageLimits(width, height, limits); !s.ok()) return s;
  if (channels != 1 && channels != 3 && channels != 4) {
    return absl::InvalidArgumentError(
        absl::StrCat("raw image has ", channels, " channels; expected 1, 3 or 4"));
  }
  const size_t expected = static_cast<size_t>(width * height * channels);
  if (pixels.size() != expected) {
    return absl::InvalidArgumentError(absl::StrCat("raw image of ", width, "x", height, "x",
                                                   channels, " needs ", expected, " bytes, got ",
                                                   pixels.size()));
  }
  model::RgbImage image;
  image.width = static_cast<int>(width);
  image.height = static_cast<int>(height);
  image.pixels.resize(static_cast<size_t>(width * height * 3));
  const auto* src = reinterpret_cast<const uint8_t*>(pixels.data());
  for (int64_t i = 0; i < width * height; ++i) {
    for (int c = 0; c < 3; ++c) {
      image.pixels[i * 3 + c] = src[i * channels + (channels == 1 ? 0 : c)];
    }
  }
  return image;
}

}  // namespace elliptical::server
