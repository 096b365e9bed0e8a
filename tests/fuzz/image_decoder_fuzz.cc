// Client bytes into the image decoder, both ways a Classify or Segment request carries an image:
// encoded PNG/JPEG/WebP bytes (libpng, libjpeg-turbo, libwebp behind DecodeImage), and raw pixels
// whose geometry the client states. The first input byte picks the way; the rest is the payload.
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "absl/strings/string_view.h"
#include "server/input/image_decoder.h"

namespace {

using elliptical::server::DecodeImage;
using elliptical::server::ImageFromPixels;
using elliptical::server::ImageLimits;
using elliptical::server::ImageSize;
using elliptical::server::ReadImageSize;

void CheckImage(const absl::StatusOr<elliptical::model::RgbImage>& image) {
  if (!image.ok()) return;
  // A decoded image is exactly its stated geometry in RGB.
  if (image->width <= 0 || image->height <= 0 ||
      image->pixels.size() != static_cast<size_t>(image->width) * image->height * 3) {
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  // The server's limit is 64 Mi pixels; a smaller one keeps every input's allocations inside the
  // fuzzer's memory limit while exercising the same check.
  ImageLimits limits;
  limits.max_pixels = 4 << 20;
  const uint8_t mode = data[0];
  absl::string_view payload(reinterpret_cast<const char*>(data + 1), size - 1);
  if (mode < 0x80) {
    // The callers' contract: the header's size first, then the decode, which must agree with it.
    const absl::StatusOr<ImageSize> size = ReadImageSize(payload);
    const absl::StatusOr<elliptical::model::RgbImage> image = DecodeImage(payload, limits);
    CheckImage(image);
    if (image.ok() && (!size.ok() || size->width != image->width || size->height != image->height ||
                       static_cast<int64_t>(image->width) * image->height > limits.max_pixels)) {
      std::abort();
    }
    return 0;
  }
  // Raw pixels. 0x80..0xBF: a geometry that matches the payload (width from the mode byte), so
  // the conversion itself runs; 0xC0..0xFF: width, height and channels as three client uint32
  // (the proto's types), so every geometry check sees hostile values.
  if (mode < 0xC0) {
    const int64_t channels = 1 + (mode & 3);  // 1..4: 2 is refused
    const int64_t width = 1 + ((mode >> 2) & 0xF);
    const int64_t row = width * channels;
    const int64_t height = static_cast<int64_t>(payload.size()) / row;
    CheckImage(ImageFromPixels(width, height, channels,
                               payload.substr(0, static_cast<size_t>(height * row)), limits));
    return 0;
  }
  if (payload.size() < 12) return 0;
  uint32_t geometry[3];
  std::memcpy(geometry, payload.data(), sizeof(geometry));
  CheckImage(ImageFromPixels(geometry[0], geometry[1], geometry[2], payload.substr(12), limits));
  return 0;
}
