#include "server/core/request_validation.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "server/generation/sampler.h"
#include "server/input/image_decoder.h"

namespace elliptical::server {
namespace {

absl::Status Invalid(absl::string_view field, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(field, " ", why));
}

// The decoded size of one image, from its header or its raw fields.
absl::StatusOr<int64_t> ImagePixels(const ImageInput& image, const std::string& field, const RequestLimits& limits) {
  int64_t width = 0, height = 0;
  switch (image.kind) {
    case ImageInput::Kind::kEncoded: {
      auto size = ReadImageSize(absl::string_view(image.encoded.data(), image.encoded.size()));
      if (!size.ok()) return Invalid(field, size.status().message());
      width = size->width;
      height = size->height;
      break;
    }
    case ImageInput::Kind::kPixels: {
      width = image.width;
      height = image.height;
      const int64_t channels = image.channels;
      if (channels != 1 && channels != 3 && channels != 4) {
        return Invalid(field, absl::StrCat("has ", channels, " channels; expected 1, 3 or 4"));
      }
      break;
    }
    case ImageInput::Kind::kTensor:
      width = image.width;
      height = image.height;
      if (image.channels != 3) {
        return Invalid(field, absl::StrCat("is a tensor of ", image.channels, " channels; expected 3"));
      }
      break;
    case ImageInput::Kind::kUnset:
      return Invalid(field, "sets neither encoded bytes nor raw pixels");
  }
  if (absl::Status s = CheckImageSize(width, height, limits.max_image_pixels); !s.ok()) {
    return Invalid(field, s.message());
  }
  if (image.kind == ImageInput::Kind::kPixels) {
    // width x height is within max_image_pixels (checked above), so this cannot wrap.
    const uint64_t needed = static_cast<uint64_t>(width * height) * static_cast<uint64_t>(image.channels);
    if (needed != image.pixels.size()) {
      return Invalid(field, absl::StrCat("is ", width, "x", height, "x", image.channels, " and needs ", needed,
                                         " bytes of pixels, got ", image.pixels.size()));
    }
  }
  if (image.kind == ImageInput::Kind::kTensor) {
    // As above, bounded by max_image_pixels; a tensor's pixels are charged to the pixel budget
    // like a decoded image's (its float32 copy takes 12 bytes each, within the 15 assumed).
    const uint64_t needed = static_cast<uint64_t>(3 * width * height) *
                            static_cast<uint64_t>(model::PixelTensor::ElementBytes(image.tensor_type));
    if (needed != image.tensor.size()) {
      return Invalid(field, absl::StrCat("is a 3x", height, "x", width, " tensor and needs ", needed,
                                         " bytes, got ", image.tensor.size()));
    }
  }
  return width * height;
}

absl::StatusOr<VisionRequestCost> CheckImages(const std::vector<ImageInput>& images, const RequestLimits& limits) {
  if (images.empty()) return Invalid("images", "is empty: send at least one image");
  if (static_cast<int64_t>(images.size()) > limits.max_images_per_request) {
    return Invalid("images", absl::StrCat("holds ", images.size(), " images; the limit is ",
                                          limits.max_images_per_request, " per request"));
  }
  VisionRequestCost cost;
  for (size_t i = 0; i < images.size(); ++i) {
    auto pixels = ImagePixels(images[i], absl::StrCat("images[", i, "]"), limits);
    if (!pixels.ok()) return pixels.status();
    // Each term is at most max_image_pixels and there are at most max_images_per_request.
    cost.pixels += *pixels;
  }
  if (cost.pixels > limits.max_request_pixels) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "images decode to ", cost.pixels, " pixels in all; the limit is ", limits.max_request_pixels,
        " pixels per request: send fewer or smaller images per call"));
  }
  return cost;
}

// A prompt or a text to score: the model's own bound in tokens is checked by its scheduler.
absl::Status CheckText(absl::string_view field, const std::string& text, const RequestLimits& limits) {
  if (text.empty()) return Invalid(field, "is empty");
  if (static_cast<int64_t>(text.size()) > limits.max_prompt_bytes) {
    return Invalid(field, absl::StrCat("is ", text.size(), " bytes; the limit is ", limits.max_prompt_bytes));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateModelName(const std::string& name, const RequestLimits& limits) {
  if (name.empty()) return Invalid("model_name", "is empty; ListModels shows the models served");
  if (static_cast<int64_t>(name.size()) > limits.max_model_name_bytes) {
    return Invalid("model_name", absl::StrCat("is ", name.size(), " bytes; the limit is ",
                                              limits.max_model_name_bytes));
  }
  return absl::OkStatus();
}

absl::Status CheckTopK(uint64_t top_k, const RequestLimits& limits) {
  if (top_k <= limits.max_top_k) return absl::OkStatus();
  return Invalid("top_k", absl::StrCat(top_k, " is beyond the limit of ", limits.max_top_k,
                                       " (values above the number of classes or tokens are capped)"));
}

absl::StatusOr<VisionRequestCost> ValidateVision(const VisionRequest& request, const RequestLimits& limits) {
  if (absl::Status s = ValidateModelName(request.model_name, limits); !s.ok()) return s;
  return CheckImages(request.images, limits);
}

absl::Status ValidateScore(const ScoreRequest& request, const RequestLimits& limits) {
  if (absl::Status s = ValidateModelName(request.model_name, limits); !s.ok()) return s;
  return CheckText("text", request.text, limits);
}

absl::Status ValidateGenerate(const GenerateRequest& request, const RequestLimits& limits) {
  if (absl::Status s = ValidateModelName(request.model_name, limits); !s.ok()) return s;
  if (absl::Status s = CheckText("prompt", request.prompt, limits); !s.ok()) return s;
  // The model's own bound (generation.max_new_tokens_limit) is checked by its scheduler; this
  // one only keeps the value in int range.
  if (request.max_new_tokens < 0 || request.max_new_tokens > (int64_t{1} << 30)) {
    return Invalid("max_new_tokens", absl::StrCat(request.max_new_tokens, " is out of range"));
  }
  if (absl::Status s = CheckSamplingParams(request.sampling); !s.ok()) return s;
  if (request.sampling.top_k < 0) return Invalid("top_k", absl::StrCat(request.sampling.top_k, " is negative"));
  if (absl::Status s = CheckTopK(static_cast<uint64_t>(request.sampling.top_k), limits); !s.ok()) return s;
  if (static_cast<int64_t>(request.stop.size()) > limits.max_stop_sequences) {
    return Invalid("stop", absl::StrCat("holds ", request.stop.size(), " sequences; the limit is ",
                                        limits.max_stop_sequences));
  }
  for (size_t i = 0; i < request.stop.size(); ++i) {
    const std::string& stop = request.stop[i];
    const std::string field = absl::StrCat("stop[", i, "]");
    if (stop.empty()) return Invalid(field, "is empty");
    if (static_cast<int64_t>(stop.size()) > limits.max_stop_sequence_bytes) {
      return Invalid(field, absl::StrCat("is ", stop.size(), " bytes; the limit is ",
                                         limits.max_stop_sequence_bytes));
    }
  }
  return absl::OkStatus();
}

}  // namespace elliptical::server
