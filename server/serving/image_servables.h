// A loaded vision model together with its batcher: what the gRPC service calls for Classify and
// Segment. Images are decoded and normalised on the calling (request) thread; the batcher's
// worker thread only runs batches on the device.
#pragma once

#include <functional>
#include <random>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "model/image_classifier.h"
#include "model/image_segmenter.h"
#include "server/batching/dynamic_batcher.h"

namespace elliptical::server {

struct ServeTiming {
  absl::Duration preprocess;
  BatchTiming batch;
};

// What every call carries besides its inputs.
struct CallContext {
  absl::Time deadline = absl::InfiniteFuture();
  std::function<bool()> cancelled;
};

// Attention statistics computed for monitoring on a random fraction of batches.
struct StatsSampling {
  double rate = 0;  // in [0, 1]
  std::function<void(const std::vector<model::LayerStats>&)> on_stats;
};

struct ImageItem {
  std::shared_ptr<const model::PreparedImage> image;
  bool with_stats = false;
};

// Model: ImageClassifier or ImageSegmenter; Result: what its batch function returns per image.
template <typename Model, typename Result>
class VisionServable {
 public:
  using RunPrepared = absl::StatusOr<std::vector<Result>> (Model::*)(
      absl::Span<const model::PreparedImage* const>, bool);

  // `same_size_batches`: the model keeps each image's resolution, so only images of one size
  // may share a batch (the segmenter); otherwise every prepared image has the model's size.
  //
  // `sampling`: a fraction of batches computes attention statistics for monitoring even when
  // no request asked; they go to `sampling.on_stats`, and only requests that asked get them.
  VisionServable(std::string name, std::shared_ptr<Model> model, BatchingOptions options,
                 RunPrepared run, bool same_size_batches, BatcherObserver observer = {},
                 StatsSampling sampling = {})
      : model_(std::move(model)),
        same_size_batches_(same_size_batches),
        batcher_(std::move(name), options,
                 [m = model_.get(), run, sampling, rng = std::mt19937_64(0x5eed)](
                     const std::vector<const ImageItem*>& items) mutable -> absl::StatusOr<std::vector<Result>> {
                   std::vector<const model::PreparedImage*> images;
                   bool asked = false;
                   for (const ImageItem* item : items) {
                     images.push_back(item->image.get());
                     asked = asked || item->with_stats;
                   }
                   const bool sampled = sampling.on_stats && sampling.rate > 0 &&
                                        std::uniform_real_distribution<double>(0, 1)(rng) < sampling.rate;
                   auto results = (m->*run)(images, asked || sampled);
                   if (!results.ok()) return results;
                   for (size_t i = 0; i < results->size(); ++i) {
                     if (sampled) sampling.on_stats((*results)[i].stats);
                     if (!items[i]->with_stats) (*results)[i].stats.clear();
                   }
                   return results;
                 },
                 std::move(observer)) {}

  absl::StatusOr<std::vector<Result>> Run(const std::vector<model::RgbImage>& images, bool with_stats,
                                          const CallContext& call, ServeTiming* timing) {
    const absl::Time start = absl::Now();
    std::vector<ImageItem> items;
    items.reserve(images.size());
    for (size_t i = 0; i < images.size(); ++i) {
      auto prepared = model_->Prepare(images[i]);
      if (!prepared.ok()) {
        return absl::Status(prepared.status().code(),
                            absl::StrCat("images[", i, "]: ", prepared.status().message()));
      }
      items.push_back({*std::move(prepared), with_stats});
    }
    if (timing) timing->preprocess = absl::Now() - start;

    // Images of different sizes cannot share a batch: each size runs as its own request.
    std::vector<Result> out(images.size());
    std::vector<bool> done(images.size(), false);
    for (size_t first = 0; first < images.size(); ++first) {
      if (done[first]) continue;
      std::vector<ImageItem> group;
      std::vector<size_t> where;
      for (size_t i = first; i < images.size(); ++i) {
        if (!done[i] && (!same_size_batches_ || (images[i].height == images[first].height &&
                                                 images[i].width == images[first].width))) {
          group.push_back(items[i]);
          where.push_back(i);
          done[i] = true;
        }
      }
      const uint64_t key = same_size_batches_ ? (static_cast<uint64_t>(images[first].height) << 32) |
                                                    static_cast<uint32_t>(images[first].width)
                                              : 0;
      BatchTiming part;
      auto results = batcher_.Run(std::move(group), key, call.deadline, call.cancelled, &part);
      if (!results.ok()) return results.status();
      for (size_t j = 0; j < where.size(); ++j) out[where[j]] = std::move((*results)[j]);
      if (timing) {
        timing->batch.queue += part.queue;
        timing->batch.compute += part.compute;
        timing->batch.batch_size = std::max(timing->batch.batch_size, part.batch_size);
      }
    }
    return out;
  }

  const model::ModelDescription& description() const { return model_->description(); }
  int queued_items() const { return batcher_.queued_items(); }
  // Runs what is queued, then refuses new work.
  void Shutdown() { batcher_.Shutdown(); }

 private:
  std::shared_ptr<Model> model_;
  const bool same_size_batches_;
  DynamicBatcher<ImageItem, Result> batcher_;
};

using ClassifierServable = VisionServable<model::ImageClassifier, model::Classification>;
using SegmenterServable = VisionServable<model::ImageSegmenter, model::Segmentation>;

}  // namespace elliptical::server
