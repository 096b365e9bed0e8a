// PNG files to RGB8 pixels, for image_decoder.cc (which picks the format by signature).
// Thread-safe: each call has decoder state of its own.
#pragma once

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "model/api/image.h"
#include "server/input/image_decoder.h"

namespace elliptical::server {

// The width and height the PNG header declares, read without decoding any pixel.
absl::StatusOr<ImageSize> ReadPngSize(absl::string_view encoded);

// The header read again, its size checked against `limits`, and only then the pixels allocated
// and decoded. Damaged or truncated files are refused with a message naming what is wrong.
absl::StatusOr<model::RgbImage> DecodePng(absl::string_view encoded, const ImageLimits& limits);

}  // namespace elliptical::server
