#include "server/calls/request_validation.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "server/generation/sampler.h"
#include "server/input/image_decoder.h"

namespace elliptical::server {
namespace {

absl::Status Invalid(absl::string_view field, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(field, " ", why));
}

absl::Status CheckPriority(int priority) {
  if (v1::Priority_IsValid(priority)) return absl::OkStatus();
  return Invalid("priority", absl::StrCat(priority, " is not one of the Priority values"));
}

absl::Status CheckTopK(uint32_t top_k, const RequestLimits& limits) {
  if (top_k <= limits.max_top_k) return absl::OkStatus();
  return Invalid("top_k", absl::StrCat(top_k, " is beyond the limit of ", limits.max_top_k,
                                       " (values above the number of classes or tokens are capped)"));
}

// The decoded size of one image, from its header or its raw fields.
absl::StatusOr<int64_t> ImagePixels(const v1::Image& image, const std::string& field,
                                    const RequestLimits& limits) {
  int64_t width = 0, height = 0;
  switch (image.source_case()) {
    case v1::Image::kEncoded: {
      auto size = ReadImageSize(image.encoded());
      if (!size.ok()) return Invalid(field, size.status().message());
      width = size->width;
      height = size->height;
      break;
    }
    case v1::Image::kRaw: {
      const v1::RawImage& raw = image.raw();
      width = raw.width_px();
      height = raw.height_px();
      const int64_t channels = raw.channels();
      if (channels != 1 && channels != 3 && channels != 4) {
        return Invalid(field, absl::StrCat("has ", channels, " channels; expected 1, 3 or 4"));
      }
      break;
    }
    case v1::Image::SOURCE_NOT_SET:
      return Invalid(field, "sets neither encoded bytes nor raw pixels");
  }
  if (absl::Status s = CheckImageSize(width, height, limits.max_image_pixels); !s.ok()) {
    return Invalid(field, s.message());
  }
  if (image.source_case() == v1::Image::kRaw) {
    const uint64_t needed = static_cast<uint64_t>(width * height) * image.raw().channels();
    if (needed != image.raw().pixels().size()) {
      return Invalid(field, absl::StrCat("is ", width, "x", height, "x", image.raw().channels(),
                                         " and needs ", needed, " bytes of pixels, got ",
                                         image.raw().pixels().size()));
    }
  }
  return width * height;
}

absl::StatusOr<VisionRequestCost> CheckImages(const google::protobuf::RepeatedPtrField<v1::Image>& images,
                                              const RequestLimits& limits) {
  if (images.empty()) return Invalid("images", "is empty: send at least one image");
  if (images.size() > limits.max_images_per_request) {
    return Invalid("images", absl::StrCat("holds ", images.size(), " images; the limit is ",
                                          limits.max_images_per_request, " per request"));
  }
  VisionRequestCost cost;
  for (int i = 0; i < images.size(); ++i) {
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

absl::StatusOr<VisionRequestCost> ValidateClassify(const v1::ClassifyRequest& request,
                                                   const RequestLimits& limits) {
  if (absl::Status s = ValidateModelName(request.model_name(), limits); !s.ok()) return s;
  if (absl::Status s = CheckPriority(request.priority()); !s.ok()) return s;
  if (absl::Status s = CheckTopK(request.top_k(), limits); !s.ok()) return s;
  return CheckImages(request.images(), limits);
}

absl::StatusOr<VisionRequestCost> ValidateSegment(const v1::SegmentRequest& request,
                                                  const RequestLimits& limits) {
  if (absl::Status s = ValidateModelName(request.model_name(), limits); !s.ok()) return s;
  if (absl::Status s = CheckPriority(request.priority()); !s.ok()) return s;
  return CheckImages(request.images(), limits);
}

absl::Status ValidateScore(const v1::ScoreRequest& request, const RequestLimits& limits) {
  if (absl::Status s = ValidateModelName(request.model_name(), limits); !s.ok()) return s;
  return CheckText("text", request.text(), limits);
}

absl::Status ValidateGenerate(const v1::GenerateRequest& request, const RequestLimits& limits) {
  if (absl::Status s = ValidateModelName(request.model_name(), limits); !s.ok()) return s;
  if (absl::Status s = CheckText("prompt", request.prompt(), limits); !s.ok()) return s;
  // The model's own bound (generation.max_new_tokens_limit) is checked by its scheduler; this
  // one only keeps the value in int range.
  if (request.max_new_tokens() > (1u << 30)) {
    return Invalid("max_new_tokens", absl::StrCat(request.max_new_tokens(), " is out of range"));
  }
  SamplingParams sampling;
  sampling.temperature = request.temperature();
  sampling.top_p = request.top_p();
  if (absl::Status s = CheckSamplingParams(sampling); !s.ok()) return s;
  if (absl::Status s = CheckTopK(request.top_k(), limits); !s.ok()) return s;
  if (request.stop_size() > limits.max_stop_sequences) {
    return Invalid("stop", absl::StrCat("holds ", request.stop_size(), " sequences; the limit is ",
                                        limits.max_stop_sequences));
  }
  for (int i = 0; i < request.stop_size(); ++i) {
    const std::string& stop = request.stop(i);
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
