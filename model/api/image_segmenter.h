// A semantic segmenter loaded from a model directory; free of LibTorch like image_classifier.h.
//
// Thread-safety: Segment may be called from several threads at once.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "model/api/attention_stats.h"
#include "model/api/image.h"
#include "model/api/image_classifier.h"
#include "model/api/model_description.h"
#include "model/api/stop_check.h"

namespace elliptical::model {

struct Segmentation {
  int width = 0;
  int height = 0;
  std::vector<int32_t> class_map;  // height * width class indices, row-major
  std::vector<LayerStats> stats;   // filled when asked for; averaged over sliding windows
};

class ImageSegmenter {
 public:
  static absl::StatusOr<std::unique_ptr<ImageSegmenter>> Load(const std::string& directory,
                                                              const LoadOptions& options);
  virtual ~ImageSegmenter() = default;

  // Normalises one image (CPU work, for request threads; no resize).
  virtual absl::StatusOr<std::shared_ptr<const PreparedImage>> Prepare(const RgbImage& image) const = 0;

  // Takes a tensor the client normalised itself (any size, as images are), as Prepare would
  // have; INVALID_ARGUMENT when it is inconsistent or not finite.
  virtual absl::StatusOr<std::shared_ptr<const PreparedImage>> PrepareTensor(const PixelTensor& tensor) const = 0;

  // Segments prepared images of one size as a batch, at their own resolution: windows of the
  // model's training size slide over larger images, a bounded group of windows per forward.
  // Each result depends on its own image only. CANCELLED when `stop`, asked before each group,
  // says nobody waits.
  virtual absl::StatusOr<std::vector<Segmentation>> SegmentPrepared(
      absl::Span<const PreparedImage* const> images, bool with_stats, const StopCheck& stop = {}) = 0;

  // Prepare + SegmentPrepared, image by image (images may differ in size).
  absl::StatusOr<std::vector<Segmentation>> Segment(absl::Span<const RgbImage> images, bool with_stats);

  virtual const ModelDescription& description() const = 0;
};

}  // namespace elliptical::model
