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
#include "model/attention_stats.h"
#include "model/image.h"
#include "model/model_description.h"

namespace elliptical::model {

struct LoadOptions {
  // Overrides the config's device / dtype when non-empty ("cpu", "cuda:0", "auto"; "float32", ...).
  std::string device;
  std::string dtype;
};

struct Classification {
  std::vector<float> probabilities;  // softmax over classes
  std::vector<LayerStats> stats;     // filled when asked for
};

class ImageClassifier {
 public:
  static absl::StatusOr<std::unique_ptr<ImageClassifier>> Load(const std::string& directory,
                                                               const LoadOptions& options);
  virtual ~ImageClassifier() = default;

  // Each image is resized to the model's input size, normalised and classified; the images
  // form one batch, and each result depends on its own image only.
  virtual absl::StatusOr<std::vector<Classification>> Classify(absl::Span<const RgbImage> images,
                                                               bool with_stats) = 0;

  virtual const ModelDescription& description() const = 0;
};

}  // namespace elliptical::model
