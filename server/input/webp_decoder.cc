#include "server/input/webp_decoder.h"

#include <webp/decode.h>

#include "absl/strings/str_cat.h"

namespace elliptical::server {
namespace {

const char* Reason(VP8StatusCode status) {
  switch (status) {
    case VP8_STATUS_OUT_OF_MEMORY: return "out of memory";
    case VP8_STATUS_INVALID_PARAM: return "invalid parameter";
    case VP8_STATUS_BITSTREAM_ERROR: return "corrupt WebP data";
    case VP8_STATUS_UNSUPPORTED_FEATURE: return "a WebP feature this decoder does not support";
    case VP8_STATUS_SUSPENDED: return "decoding suspended";
    case VP8_STATUS_USER_ABORT: return "decoding aborted";
    case VP8_STATUS_NOT_ENOUGH_DATA: return "the file ends before its image data does (truncated?)";
    default: return "unknown error";
  }
}

absl::StatusOr<WebPBitstreamFeatures> ReadFeatures(absl::string_view encoded) {
  WebPBitstreamFeatures features;
  const VP8StatusCode status =
      WebPGetFeatures(reinterpret_cast<const uint8_t*>(encoded.data()), encoded.size(), &features);
  if (status != VP8_STATUS_OK) {
    return absl::InvalidArgumentError(absl::StrCat("cannot read the WebP header: ", Reason(status)));
  }
  return features;
}

}  // namespace

absl::StatusOr<ImageSize> ReadWebpSize(absl::string_view encoded) {
  absl::StatusOr<WebPBitstreamFeatures> features = ReadFeatures(encoded);
  if (!features.ok()) return features.status();
  return ImageSize{features->width, features->height};
}

absl::StatusOr<model::RgbImage> DecodeWebp(absl::string_view encoded, const ImageLimits& limits) {
  absl::StatusOr<WebPBitstreamFeatures> features = ReadFeatures(encoded);
  if (!features.ok()) return features.status();
  if (absl::Status s = CheckImageLimits(features->width, features->height, limits); !s.ok()) return s;
  if (features->has_animation) {
    return absl::InvalidArgumentError("cannot decode the WebP image: it is an animation; send one frame");
  }
  model::RgbImage image;
  image.width = features->width;
  image.height = features->height;
  image.pixels.resize(static_cast<size_t>(image.width) * image.height * 3);
  // Into our buffer, allocated after the size check; alpha is dropped, the colour as stored.
  WebPDecoderConfig config;
  if (!WebPInitDecoderConfig(&config)) return absl::InternalError("libwebp's version does not match its header");
  config.output.colorspace = MODE_RGB;
  config.output.is_external_memory = 1;
  config.output.u.RGBA.rgba = image.pixels.data();
  config.output.u.RGBA.stride = image.width * 3;
  config.output.u.RGBA.size = image.pixels.size();
  const VP8StatusCode status = WebPDecode(reinterpret_cast<const uint8_t*>(encoded.data()), encoded.size(), &config);
  WebPFreeDecBuffer(&config.output);  // external memory: releases only what libwebp may hold
  if (status != VP8_STATUS_OK) {
    return absl::InvalidArgumentError(absl::StrCat("cannot decode the WebP image: ", Reason(status)));
  }
  return image;
}

}  // namespace elliptical::server
