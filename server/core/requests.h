// What a front end asks of the serving core and what it gets back, as plain C++: no wire type
// of any protocol appears here. Each protocol's codec (server/protocols/elliptical_v1,
// server/protocols/kserve, server/protocols/openai) builds these
// from its messages and presents the results its own way; dense outputs stay dense until then.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/time/time.h"
#include "model/api/image.h"
#include "model/api/image_classifier.h"
#include "model/api/image_segmenter.h"
#include "server/batching/batch_task.h"
#include "server/generation/generation_scheduler.h"
#include "server/serving/vision_servable.h"

namespace elliptical::server {

// One image as the request carries it, not yet decoded. The bytes are a view: they belong to
// the front end's request, which must outlive the call (until its `done` has run).
struct ImageInput {
  enum class Kind { kUnset, kEncoded, kPixels, kTensor };
  Kind kind = Kind::kUnset;
  std::string_view encoded;  // kEncoded: a PNG or JPEG file
  // kPixels: height x width x channels bytes, row-major, channels 1, 3 or 4.
  int64_t width = 0;
  int64_t height = 0;
  int64_t channels = 0;
  std::string_view pixels;
  // kTensor: the client preprocessed the image itself (resized and normalised as the model's
  // config says): 3 x height x width elements of `tensor_type`, channels first, little-endian.
  // No decoding and no preprocessing; the model checks the size it takes.
  model::PixelTensor::Type tensor_type = model::PixelTensor::Type::kFloat32;
  std::string_view tensor;

  static ImageInput Encoded(std::string_view bytes) {
    ImageInput i;
    i.kind = Kind::kEncoded;
    i.encoded = bytes;
    return i;
  }
  static ImageInput Pixels(int64_t width, int64_t height, int64_t channels, std::string_view bytes) {
    ImageInput i;
    i.kind = Kind::kPixels;
    i.width = width;
    i.height = height;
    i.channels = channels;
    i.pixels = bytes;
    return i;
  }
  static ImageInput Tensor(int64_t width, int64_t height, model::PixelTensor::Type type, std::string_view bytes) {
    ImageInput i;
    i.kind = Kind::kTensor;
    i.width = width;
    i.height = height;
    i.channels = 3;
    i.tensor_type = type;
    i.tensor = bytes;
    return i;
  }
};

// Classify and Segment.
struct VisionRequest {
  std::string model_name;
  std::string model_version;  // "": the newest ready version
  std::vector<ImageInput> images;
  Priority priority = Priority::kNormal;
  bool attention_stats = false;  // per-layer statistics of the metric m with each result
  // Bytes a codec had to make (pixels or tensor elements it converted) that `images` view: they move with the
  // request, and their addresses do not change when it moves.
  std::vector<std::shared_ptr<const std::string>> owned;
};

// A model's labels, kept alive with the model they belong to.
using Labels = std::shared_ptr<const std::vector<std::string>>;

struct ClassifyResult {
  std::string model_name;
  int64_t model_version = 0;  // the version that served it
  // One per image, in order: the probability of every class (dense), and statistics if asked.
  std::vector<model::Classification> classifications;
  Labels labels;
  ServeTiming timing;
};

struct SegmentResult {
  std::string model_name;
  int64_t model_version = 0;  // the version that served it
  std::vector<model::Segmentation> masks;  // one per image: a class id per pixel
  Labels labels;
  ServeTiming timing;
};

// Generate: the text, the budget and how to sample (validated by the core).
struct GenerateRequest {
  std::string model_name;
  std::string prompt;
  int64_t max_new_tokens = 0;  // 0: the model's default
  SamplingParams sampling;
  uint64_t seed = 0;
  std::vector<std::string> stop;
  bool prompt_logprobs = false;  // also score the prompt's tokens, in the same prefill
};

// Score: the log-probability of each token of a text under a language model.
struct ScoreRequest {
  std::string model_name;
  std::string text;
  bool append_eos = true;  // score the end of the text too
};

struct ScoreResult {
  std::string model_name;
  std::vector<GenerationStream::ScoredToken> tokens;
  double total_logprob = 0;
  int scored_tokens = 0;
  double perplexity = 0;  // NaN when no token was scored
  absl::Duration compute;
};

}  // namespace elliptical::server
