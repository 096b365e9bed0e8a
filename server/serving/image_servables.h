// A loaded vision model together with its batcher: what the gRPC service calls for Classify and
// Segment. Images are decoded and normalised on the calling (request) thread; the batcher's
// worker thread only runs batches on the device.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "model/image_classifier.h"
#include "model/image_segmenter.h"
#include "server/batching/dynamic_batcher.h"

namespace elliptical::server {

struct ServeTiming {
  absl::Duration preprocess;
  BatchTiming batch;
};

// What every call carries besides its images.
struct CallContext {
  absl::Time deadline = absl::InfiniteFuture();
  std::function<bool()> cancelled;
};

struct ImageItem {
  std::shared_ptr<const model::PreparedImage> image;
  bool with_stats = false;
};

class ClassifierServable {
 public:
  ClassifierServable(std::string name, std::shared_ptr<model::ImageClassifier> model,
                     BatchingOptions options, BatcherObserver observer = {});

  absl::StatusOr<std::vector<model::Classification>> Classify(const std::vector<model::RgbImage>& images,
                                                              bool with_stats, const CallContext& call,
                                                              ServeTiming* timing);
  const model::ModelDescription& description() const { return model_->description(); }
  int queued_items() const { return batcher_.queued_items(); }
  // Runs what is queued, then refuses new work.
  void Shutdown() { batcher_.Shutdown(); }

 private:
  std::shared_ptr<model::ImageClassifier> model_;
  DynamicBatcher<ImageItem, model::Classification> batcher_;
};

class SegmenterServable {
 public:
  SegmenterServable(std::string name, std::shared_ptr<model::ImageSegmenter> model,
                    BatchingOptions options, BatcherObserver observer = {});

  // Images of one size share batches; others wait for their own.
  absl::StatusOr<std::vector<model::Segmentation>> Segment(const std::vector<model::RgbImage>& images,
                                                           bool with_stats, const CallContext& call,
                                                           ServeTiming* timing);
  const model::ModelDescription& description() const { return model_->description(); }
  int queued_items() const { return batcher_.queued_items(); }
  void Shutdown() { batcher_.Shutdown(); }

 private:
  std::shared_ptr<model::ImageSegmenter> model_;
  DynamicBatcher<ImageItem, model::Segmentation> batcher_;
};

}  // namespace elliptical::server
