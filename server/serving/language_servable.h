// A loaded language model behind its generation scheduler (continuous batching, one cache slot
// per running sequence).
#pragma once

#include <memory>

#include "server/generation/generation_scheduler.h"
#include "server/serving/servable.h"

namespace elliptical::server {

class LanguageServable final : public Servable {
 public:
  static constexpr model::ModelFamily kFamily = model::ModelFamily::kLanguageModel;

  explicit LanguageServable(std::unique_ptr<GenerationScheduler> scheduler)
      : scheduler_(std::move(scheduler)) {}

  // See GenerationScheduler::Submit.
  absl::StatusOr<std::shared_ptr<GenerationStream>> Submit(const GenerationParams& params) {
    return scheduler_->Submit(params);
  }

  const model::ModelDescription& description() const override { return scheduler_->model().description(); }
  ServableLoad load() const override {
    const GenerationScheduler::Load g = scheduler_->load();
    ServableLoad l;
    l.instances = 1;
    l.busy_instances = g.running > 0 ? 1 : 0;
    l.generation = GenerationLoad{g.running, g.waiting, g.cache.slots, g.cache.slots_used,
                                  g.cache.bytes_allocated, g.cache.bytes_used, g.cache.slot_tokens};
    return l;
  }
  void Shutdown() override { scheduler_->Shutdown(); }

 private:
  const std::unique_ptr<GenerationScheduler> scheduler_;
};

}  // namespace elliptical::server
