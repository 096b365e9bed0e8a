// An image classifier loaded from a model directory. The interface is free of LibTorch so the
// server compiles against it in seconds; the implementation lives in image_classifier.cc.
//
// Thread-safety: Classify may be called from several threads at once.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "model/api/attention_stats.h"
#include "model/api/image.h"
#include "model/api/load_options.h"
#include "model/api/model_description.h"
#include "model/api/stop_check.h"

namespace elliptical::model {

struct Classification {
  std::vector<float> probabilities;  // softmax over classes
  std::vector<LayerStats> stats;     // filled when asked for
};

// An image resized and normalised for one model (CPU memory, opaque outside the model).
struct PreparedImage;

class ImageClassifier {
 public:
  static absl::StatusOr<std::unique_ptr<ImageClassifier>> Load(const std::string& directory,
                                                               const LoadOptions& options);
  virtual ~ImageClassifier() = default;

  // Resizes (as config.json's "preprocess" says) and normalises one image: CPU work, meant for
  // request threads, so the thread that drives the device only runs batches.
  virtual absl::StatusOr<std::shared_ptr<const PreparedImage>> Prepare(const RgbImage& image) const = 0;

  // Takes a tensor the client resized and normalised itself, as Prepare would have: it must be
  // 3 x image_size x image_size (INVALID_ARGUMENT otherwise, naming the size) and finite.
  virtual absl::StatusOr<std::shared_ptr<const PreparedImage>> PrepareTensor(const PixelTensor& tensor) const = 0;

  // Classifies prepared images as one batch; each result depends on its own image only.
  // CANCELLED, without computing, when `stop` says nobody waits.
  virtual absl::StatusOr<std::vector<Classification>> ClassifyPrepared(
      absl::Span<const PreparedImage* const> images, bool with_stats, const StopCheck& stop = {}) = 0;

  // Prepare + ClassifyPrepared.
  absl::StatusOr<std::vector<Classification>> Classify(absl::Span<const RgbImage> images,
                                                       bool with_stats);

  virtual const ModelDescription& description() const = 0;
};

}  // namespace elliptical::model
