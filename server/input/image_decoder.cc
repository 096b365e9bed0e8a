#include "server/input/image_decoder.h"

#include <cstdlib>
#include <memory>

#include <stb_image.h>  // compiled into Debian's libstb; no STB_IMAGE_IMPLEMENTATION here

#include "absl/strings/str_cat.h"
#include "server/input/stb_guards.h"

namespace elliptical::server {
namespace {

absl::Status CheckSize(int64_t width, int64_t height, const ImageLimits& limits) {
  absl::Status s = CheckImageSize(width, height, limits.max_pixels);
  if (s.ok()) return s;
  return absl::InvalidArgumentError(absl::StrCat("image ", s.message()));
}

// stb takes an int length; a longer buffer is read as its first 2 GiB (the header is at the start).
int ClampedSize(absl::string_view encoded) {
  return static_cast<int>(std::min<size_t>(encoded.size(), INT32_MAX));
}

}  // namespace

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
  if (encoded.empty()) return absl::InvalidArgumentError("image bytes are empty");
  const bool png = encoded.size() >= 8 && encoded.substr(0, 8) == "\x89PNG\r\n\x1a\n";
  const bool jpeg = encoded.size() >= 3 && encoded.substr(0, 3) == "\xff\xd8\xff";
  if (!png && !jpeg) {
    return absl::InvalidArgumentError(
        "image bytes are not a PNG or JPEG file (no PNG or JPEG signature at the start)");
  }
  // Flaws of the packaged stb_image (stb_guards.h).
  if (jpeg && HasOversizedHuffmanTable(encoded)) {
    return absl::InvalidArgumentError("corrupt JPEG: a Huffman table holds more than 256 codes");
  }
  if (jpeg && UsesUndefinedHuffmanTable(encoded)) {
    return absl::InvalidArgumentError("corrupt JPEG: a scan uses a Huffman table the file never defines");
  }
  if (png && HasPngChunkBeyondEnd(encoded)) {
    return absl::InvalidArgumentError("corrupt PNG: a chunk runs past the end of the file");
  }
  int width = 0, height = 0, channels = 0;
  if (!stbi_info_from_memory(reinterpret_cast<const stbi_uc*>(encoded.data()), ClampedSize(encoded),
                             &width, &height, &channels)) {
    return absl::InvalidArgumentError(absl::StrCat("cannot read the ", png ? "PNG" : "JPEG",
                                                   " header: ", stbi_failure_reason()));
  }
  return ImageSize{width, height};
}

absl::StatusOr<model::RgbImage> DecodeImage(absl::string_view encoded, const ImageLimits& limits) {
  auto size = ReadImageSize(encoded);
  if (!size.ok()) return size.status();
  const auto* data = reinterpret_cast<const stbi_uc*>(encoded.data());
  const int bytes = ClampedSize(encoded);
  const bool png = encoded[0] == '\x89';
  int width = static_cast<int>(size->width), height = static_cast<int>(size->height), channels = 0;
  if (absl::Status s = CheckSize(width, height, limits); !s.ok()) return s;
  std::unique_ptr<stbi_uc, void (*)(void*)> pixels(
      stbi_load_from_memory(data, bytes, &width, &height, &channels, /*desired_channels=*/3),
      stbi_image_free);
  if (!pixels) {
    return absl::InvalidArgumentError(absl::StrCat("cannot decode the ", png ? "PNG" : "JPEG",
                                                   " image: ", stbi_failure_reason()));
  }
  model::RgbImage image;
  image.width = width;
  image.height = height;
  image.pixels.assign(pixels.get(), pixels.get() + static_cast<size_t>(width) * height * 3);
  return image;
}

absl::StatusOr<model::RgbImage> ImageFromPixels(int64_t width, int64_t height, int64_t channels,
                                                absl::string_view pixels,
                                                const ImageLimits& limits) {
  if (absl::Status s = CheckSize(width, height, limits); !s.ok()) return s;
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
