#include "server/serving/image_servables.h"

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace elliptical::server {
namespace {

// Prepares every image on the calling thread; errors name the image.
template <typename Model>
absl::StatusOr<std::vector<ImageItem>> PrepareAll(const Model& model,
                                                  const std::vector<model::RgbImage>& images,
                                                  bool with_stats) {
  std::vector<ImageItem> items;
  items.reserve(images.size());
  for (size_t i = 0; i < images.size(); ++i) {
    auto prepared = model.Prepare(images[i]);
    if (!prepared.ok()) {
      return absl::Status(prepared.status().code(),
                          absl::StrCat("images[", i, "]: ", prepared.status().message()));
    }
    items.push_back({*std::move(prepared), with_stats});
  }
  return items;
}

template <typename Items>
std::pair<std::vector<const model::PreparedImage*>, bool> Unpack(const Items& items) {
  std::vector<const model::PreparedImage*> images;
  bool with_stats = false;
  for (const ImageItem* item : items) {
    images.push_back(item->image.get());
    with_stats = with_stats || item->with_stats;
  }
  return {images, with_stats};
}

}  // namespace

ClassifierServable::ClassifierServable(std::string name, std::shared_ptr<model::ImageClassifier> model,
                                       BatchingOptions options, BatcherObserver observer)
    : model_(std::move(model)),
      batcher_(std::move(name), options,
               [m = model_.get()](const std::vector<const ImageItem*>& items) {
                 auto [images, with_stats] = Unpack(items);
                 return m->ClassifyPrepared(images, with_stats);
               },
               std::move(observer)) {}

absl::StatusOr<std::vector<model::Classification>> ClassifierServable::Classify(
    const std::vector<model::RgbImage>& images, bool with_stats, const CallContext& call,
    ServeTiming* timing) {
  const absl::Time start = absl::Now();
  auto items = PrepareAll(*model_, images, with_stats);
  if (!items.ok()) return items.status();
  if (timing) timing->preprocess = absl::Now() - start;
  // Every prepared image has the model's input size: one key for all.
  return batcher_.Run(*std::move(items), /*key=*/0, call.deadline, call.cancelled,
                      timing ? &timing->batch : nullptr);
}

SegmenterServable::SegmenterServable(std::string name, std::shared_ptr<model::ImageSegmenter> model,
                                     BatchingOptions options, BatcherObserver observer)
    : model_(std::move(model)),
      batcher_(std::move(name), options,
               [m = model_.get()](const std::vector<const ImageItem*>& items) {
                 auto [images, with_stats] = Unpack(items);
                 return m->SegmentPrepared(images, with_stats);
               },
               std::move(observer)) {}

absl::StatusOr<std::vector<model::Segmentation>> SegmenterServable::Segment(
    const std::vector<model::RgbImage>& images, bool with_stats, const CallContext& call,
    ServeTiming* timing) {
  const absl::Time start = absl::Now();
  auto items = PrepareAll(*model_, images, with_stats);
  if (!items.ok()) return items.status();
  if (timing) timing->preprocess = absl::Now() - start;
  // Images of different sizes cannot share a batch: run each size as its own request, in turn.
  std::vector<model::Segmentation> out(images.size());
  std::vector<bool> done(images.size(), false);
  for (size_t first = 0; first < images.size(); ++first) {
    if (done[first]) continue;
    const uint64_t key = (static_cast<uint64_t>(images[first].height) << 32) |
                         static_cast<uint32_t>(images[first].width);
    std::vector<ImageItem> group;
    std::vector<size_t> where;
    for (size_t i = first; i < images.size(); ++i) {
      if (!done[i] && images[i].height == images[first].height && images[i].width == images[first].width) {
        group.push_back((*items)[i]);
        where.push_back(i);
        done[i] = true;
      }
    }
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

}  // namespace elliptical::server
