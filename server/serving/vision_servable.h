// A loaded vision model (classifier or segmenter) behind its dynamic batcher. Submit decodes
// nothing and waits for nothing: images are resized and normalised on the caller's thread (a
// client's preprocessed tensor is only checked and copied), the batches run on the model's
// instance threads, and the callback gets the results. Both kinds of input become the same
// prepared tensor, so they share batches.
#pragma once

#include <functional>
#include <memory>
#include <random>
#include <string>
#include <variant>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "model/api/image_classifier.h"
#include "model/api/image_segmenter.h"
#include "server/batching/dynamic_batcher.h"
#include "server/serving/servable.h"

namespace elliptical::server {

struct ServeTiming {
  absl::Duration decode;  // filled by the caller, which decodes before Submit
  absl::Duration preprocess;
  BatchTiming batch;
};

// What every call carries besides its inputs.
struct CallOptions {
  absl::Time deadline = absl::InfiniteFuture();
  Priority priority = Priority::kNormal;
};

// Attention statistics computed for monitoring on a random fraction of batches.
struct StatsSampling {
  double rate = 0;  // in [0, 1]
  std::function<void(const std::vector<model::LayerStats>&)> on_stats;
};

// One input of a call: a decoded image, or a tensor the client preprocessed (a view into its
// request, valid until Submit returns).
using VisionInput = std::variant<model::RgbImage, model::PixelTensor>;

inline int InputWidth(const VisionInput& input) {
  return std::visit([](const auto& i) { return i.width; }, input);
}
inline int InputHeight(const VisionInput& input) {
  return std::visit([](const auto& i) { return i.height; }, input);
}

struct ImageItem {
  std::shared_ptr<const model::PreparedImage> image;
  bool with_stats = false;
};

// A submitted call: Cancel() drops what has not started; its callback then says CANCELLED.
class PendingCall {
 public:
  virtual ~PendingCall() = default;
  virtual void Cancel() = 0;
};

// Model: ImageClassifier or ImageSegmenter; Result: what its batch function returns per image.
template <typename Model, typename Result>
class VisionServable final : public Servable {
 public:
  static constexpr model::ModelFamily kFamily = std::is_same_v<Model, model::ImageClassifier>
                                                    ? model::ModelFamily::kImageClassifier
                                                    : model::ModelFamily::kSegmenter;
  using RunPrepared = absl::StatusOr<std::vector<Result>> (Model::*)(
      absl::Span<const model::PreparedImage* const>, bool, const model::StopCheck&);
  using Done = std::function<void(absl::StatusOr<std::vector<Result>>, const ServeTiming&)>;
  using Batcher = DynamicBatcher<ImageItem, Result>;

  // `same_size_batches`: the model keeps each image's resolution, so only images of one size
  // may share a batch (the segmenter); otherwise every prepared image has the model's size.
  // `sampling`: a fraction of batches computes attention statistics for monitoring even when
  // no request asked; only requests that asked get them back.
  VisionServable(std::string name, std::shared_ptr<Model> model, typename Batcher::Options options,
                 RunPrepared run, bool same_size_batches, StatsSampling sampling = {})
      : model_(std::move(model)),
        same_size_batches_(same_size_batches),
        batcher_(std::move(name), std::move(options), MakeRun(model_.get(), run, std::move(sampling))) {}

  // Schedules the images (at least one); `on_done` runs exactly once when this returns OK, with
  // one result per image in order, or the first error. Errors here: the images cannot be
  // prepared (INVALID_ARGUMENT, naming the image), or the model's queue refuses them.
  absl::StatusOr<std::shared_ptr<PendingCall>> Submit(const std::vector<VisionInput>& images,
                                                      bool with_stats, const CallOptions& call,
                                                      Done on_done) {
    const absl::Time start = absl::Now();
    std::vector<ImageItem> items;
    items.reserve(images.size());
    for (size_t i = 0; i < images.size(); ++i) {
      const auto* tensor = std::get_if<model::PixelTensor>(&images[i]);
      auto prepared = tensor != nullptr ? model_->PrepareTensor(*tensor)
                                        : model_->Prepare(std::get<model::RgbImage>(images[i]));
      if (!prepared.ok()) {
        return absl::Status(prepared.status().code(),
                            absl::StrCat("images[", i, "]: ", prepared.status().message()));
      }
      items.push_back({*std::move(prepared), with_stats});
    }
    auto join = std::make_shared<Join>(&batcher_, images.size(), std::move(on_done));
    join->timing.preprocess = absl::Now() - start;

    // Images of different sizes cannot share a batch: each size is a task of its own.
    std::vector<bool> grouped(images.size(), false);
    for (size_t first = 0; first < images.size(); ++first) {
      if (grouped[first]) continue;
      typename Batcher::Task task;
      std::vector<size_t> where;
      for (size_t i = first; i < images.size(); ++i) {
        if (!grouped[i] && (!same_size_batches_ || (InputHeight(images[i]) == InputHeight(images[first]) &&
                                                    InputWidth(images[i]) == InputWidth(images[first])))) {
          task.items.push_back(items[i]);
          where.push_back(i);
          grouped[i] = true;
        }
      }
      task.key = same_size_batches_ ? (static_cast<uint64_t>(InputHeight(images[first])) << 32) |
                                          static_cast<uint32_t>(InputWidth(images[first]))
                                    : 0;
      task.deadline = call.deadline;
      task.priority = call.priority;
      task.on_done = [join, where](absl::StatusOr<std::vector<Result>> results, const BatchTiming& t) {
        join->Part(where, std::move(results), t);
      };
      join->ExpectPart();
      auto handle = batcher_.Schedule(std::move(task));
      if (!handle.ok()) {
        join->Abandon();  // parts already queued are cancelled and never reach on_done
        return handle.status();
      }
      join->AddHandle(*handle);
    }
    join->Sealed();
    return std::shared_ptr<PendingCall>(join);
  }

  const model::ModelDescription& description() const override { return model_->description(); }
  ServableLoad load() const override {
    ServableLoad l;
    l.queued_items = batcher_.queued_items();
    l.instances = batcher_.instances();
    l.busy_instances = batcher_.busy_instances();
    return l;
  }
  void Shutdown() override { batcher_.Shutdown(); }

 private:
  // Gathers the parts of one call (one per image size) into its single callback.
  class Join final : public PendingCall {
   public:
    Join(Batcher* batcher, size_t images, Done on_done)
        : batcher_(batcher), results_(images), on_done_(std::move(on_done)) {}

    void ExpectPart() {
      absl::MutexLock lock(&mu_);
      ++parts_;
    }
    void AddHandle(uint64_t h) {
      absl::MutexLock lock(&mu_);
      handles_.push_back(h);
    }
    void Sealed() { MaybeFinish(/*sealing=*/true); }
    void Abandon() {
      {
        absl::MutexLock lock(&mu_);
        abandoned_ = true;
      }
      Cancel();
    }
    void Cancel() override {
      std::vector<uint64_t> handles;
      {
        absl::MutexLock lock(&mu_);
        handles = handles_;
      }
      for (uint64_t h : handles) batcher_->Cancel(h);
    }
    void Part(const std::vector<size_t>& where, absl::StatusOr<std::vector<Result>> results,
              const BatchTiming& t) {
      {
        absl::MutexLock lock(&mu_);
        ++parts_done_;
        timing.batch.queue += t.queue;
        timing.batch.compute += t.compute;
        timing.batch.batch_size = std::max(timing.batch.batch_size, t.batch_size);
        timing.batch.instance = t.instance;
        if (!results.ok()) {
          if (status_.ok()) status_ = results.status();
        } else {
          for (size_t j = 0; j < where.size(); ++j) results_[where[j]] = std::move((*results)[j]);
        }
      }
      MaybeFinish(/*sealing=*/false);
    }

    ServeTiming timing;  // preprocess is set before any part is scheduled

   private:
    void MaybeFinish(bool sealing) {
      Done done;
      absl::StatusOr<std::vector<Result>> out;
      {
        absl::MutexLock lock(&mu_);
        if (sealing) sealed_ = true;
        if (!sealed_ || abandoned_ || finished_ || parts_done_ < parts_) return;
        finished_ = true;
        done = std::move(on_done_);
        if (status_.ok()) {
          out = std::move(results_);
        } else {
          out = status_;
        }
      }
      done(std::move(out), timing);
    }

    Batcher* const batcher_;
    absl::Mutex mu_;
    std::vector<uint64_t> handles_ ABSL_GUARDED_BY(mu_);
    std::vector<Result> results_ ABSL_GUARDED_BY(mu_);
    absl::Status status_ ABSL_GUARDED_BY(mu_);
    int parts_ ABSL_GUARDED_BY(mu_) = 0;
    int parts_done_ ABSL_GUARDED_BY(mu_) = 0;
    bool sealed_ ABSL_GUARDED_BY(mu_) = false;
    bool abandoned_ ABSL_GUARDED_BY(mu_) = false;
    bool finished_ ABSL_GUARDED_BY(mu_) = false;
    Done on_done_ ABSL_GUARDED_BY(mu_);
  };

  static typename Batcher::RunBatch MakeRun(Model* m, RunPrepared run, StatsSampling sampling) {
    // One generator per instance thread would need the instance count here; a locked one costs
    // nothing next to a forward pass.
    auto rng = std::make_shared<std::pair<absl::Mutex, std::mt19937_64>>();
    rng->second.seed(0x5eed);
    return [m, run, sampling, rng](const std::vector<const ImageItem*>& items,
                                   const BatchContext& batch) -> absl::StatusOr<std::vector<Result>> {
      std::vector<const model::PreparedImage*> images;
      bool asked = false;
      for (const ImageItem* item : items) {
        images.push_back(item->image.get());
        asked = asked || item->with_stats;
      }
      bool sampled = false;
      if (sampling.on_stats && sampling.rate > 0) {
        absl::MutexLock lock(&rng->first);
        sampled = std::uniform_real_distribution<double>(0, 1)(rng->second) < sampling.rate;
      }
      auto results = (m->*run)(images, asked || sampled, [&batch] { return batch.Abandoned(); });
      if (!results.ok()) return results;
      for (size_t i = 0; i < results->size(); ++i) {
        if (sampled) sampling.on_stats((*results)[i].stats);
        if (!items[i]->with_stats) (*results)[i].stats.clear();
      }
      return results;
    };
  }

  std::shared_ptr<Model> model_;
  const bool same_size_batches_;
  Batcher batcher_;
};

using ClassifierServable = VisionServable<model::ImageClassifier, model::Classification>;
using SegmenterServable = VisionServable<model::ImageSegmenter, model::Segmentation>;

}  // namespace elliptical::server
