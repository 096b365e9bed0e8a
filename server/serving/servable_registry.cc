#include "server/serving/servable_registry.h"

#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "model/api/runtime.h"
#include "server/serving/language_servable.h"
#include "server/serving/thread_lending.h"
#include "server/serving/vision_servable.h"

namespace elliptical::server {
namespace {

// How long a model's batches must have run one at a time before a lone batch borrows the idle
// instances' threads: a few DeiT-Tiny forwards.
constexpr absl::Duration kLendingQuietPeriod = absl::Milliseconds(250);

StatsSampling Sampling(const ServableContext& c) {
  StatsSampling sampling;
  if (!c.metrics) return sampling;
  sampling.rate = c.attention_stats_sample_rate;
  sampling.on_stats = [metrics = c.metrics, name = c.name](const std::vector<model::LayerStats>& stats) {
    metrics->RecordAttentionStats(name, stats);
  };
  return sampling;
}

template <typename Servable>
typename Servable::Batcher::Options BatcherOptions(const ServableContext& c) {
  typename Servable::Batcher::Options o;
  o.batching = c.serving.batching;
  o.instances = c.serving.instances.count;
  // Each instance sizes its own intra-op pool, so N instances share the cores instead of each
  // taking all of them.
  o.on_instance_start = [threads = c.serving.instances.threads](int) {
    if (threads > 0) model::SetComputeThreadsForThisThread(threads);
  };
  // A lone batch (no other instance computing, nothing queued, none overlapping lately) takes
  // every instance's threads: one client then gets all the cores instead of its instance's
  // share. Under load each batch keeps its own share (thread_lending.h).
  const int per_instance = c.serving.instances.threads;
  const int all = per_instance * c.serving.instances.count;
  if (per_instance > 0 && all > per_instance && c.serving.instances.lend_idle_threads) {
    auto lending = std::make_shared<ThreadLending>(per_instance, all, kLendingQuietPeriod);
    o.on_batch_start = [lending, clock = o.clock](int, int running, int queued) {
      model::SetBatchComputeThreads(lending->ThreadsFor(running, queued, clock->Now()));
    };
  }
  if (c.metrics) {
    o.observer.on_batch = [metrics = c.metrics, name = c.name](int instance, int size, absl::Duration compute) {
      metrics->RecordBatch(name, instance, size, compute);
    };
  }
  return o;
}

absl::StatusOr<std::shared_ptr<Servable>> LoadClassifier(const ServableContext& c) {
  auto m = model::ImageClassifier::Load(c.dir.path, c.load);
  if (!m.ok()) return m.status();
  return std::make_shared<ClassifierServable>(
      c.name, std::shared_ptr<model::ImageClassifier>(*std::move(m)), BatcherOptions<ClassifierServable>(c),
      &model::ImageClassifier::ClassifyPrepared, /*same_size_batches=*/false, Sampling(c));
}

absl::StatusOr<std::shared_ptr<Servable>> LoadSegmenter(const ServableContext& c) {
  auto m = model::ImageSegmenter::Load(c.dir.path, c.load);
  if (!m.ok()) return m.status();
  return std::make_shared<SegmenterServable>(
      c.name, std::shared_ptr<model::ImageSegmenter>(*std::move(m)), BatcherOptions<SegmenterServable>(c),
      &model::ImageSegmenter::SegmentPrepared, /*same_size_batches=*/true, Sampling(c));
}

GenerationObservers Observers(const ServableContext& c) {
  GenerationObservers observers;
  if (!c.metrics) return observers;
  observers.on_finish = [metrics = c.metrics, name = c.name](const GenerationStream::Event& e) {
    // A scoring request generates nothing: the generation metrics (time to first token, tokens
    // out) are about generations; Score calls are counted by the request metrics.
    if (e.score_only) return;
    metrics->RecordGeneration(name, e.prompt_tokens, e.generated_tokens, e.time_to_first_token, e.total,
                              /*completed=*/e.status.ok());
  };
  observers.stats_sample_rate = c.attention_stats_sample_rate;
  observers.on_stats = Sampling(c).on_stats;
  return observers;
}

absl::StatusOr<std::shared_ptr<Servable>> LoadLanguageModel(const ServableContext& c) {
  auto m = model::LanguageModel::Load(c.dir.path, c.load);
  if (!m.ok()) return m.status();
  const std::string& tokenizer_path = (*m)->config().tokenizer_path;
  if (tokenizer_path.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        c.dir.path, "/config.json names no \"tokenizer\"; Generate needs a SentencePiece model"));
  }
  std::string error;
  std::unique_ptr<Tokenizer> tokenizer = Tokenizer::Load(tokenizer_path, &error);
  if (!tokenizer) return absl::InvalidArgumentError(error);
  if (tokenizer->vocab_size() > (*m)->config().vocab_size) {
    return absl::InvalidArgumentError(absl::StrCat("the tokenizer has ", tokenizer->vocab_size(),
                                                   " pieces but the model's vocab_size is ",
                                                   (*m)->config().vocab_size));
  }
  const GenerationLimits& limits = c.serving.generation;
  absl::Status cache = (*m)->AllocateCache({limits.max_cache_bytes, limits.max_running});
  if (!cache.ok()) {
    return absl::Status(cache.code(), absl::StrCat(c.dir.path, "/config.json generation.max_cache_mb: ",
                                                   cache.message()));
  }
  return std::make_shared<LanguageServable>(std::make_unique<GenerationScheduler>(
      c.name, std::shared_ptr<model::LanguageModel>(*std::move(m)), std::move(tokenizer), limits,
      Observers(c)));
}

struct Registration {
  model::ModelFamily family;
  ServableLoader load;
};

// Every family the server serves. A new family adds its servable and one line here.
constexpr Registration kRegistry[] = {
    {model::ModelFamily::kImageClassifier, &LoadClassifier},
    {model::ModelFamily::kSegmenter, &LoadSegmenter},
    {model::ModelFamily::kLanguageModel, &LoadLanguageModel},
};

}  // namespace

ServableLoader LoaderFor(model::ModelFamily family) {
  for (const Registration& r : kRegistry) {
    if (r.family == family) return r.load;
  }
  return nullptr;
}

absl::StatusOr<std::shared_ptr<Servable>> LoadServable(const ServableContext& context) {
  ServableLoader load = LoaderFor(context.dir.family);
  if (!load) {
    return absl::InvalidArgumentError(absl::StrCat(context.dir.path, ": no server support for a ",
                                                   model::FamilyName(context.dir.family)));
  }
  return load(context);
}

}  // namespace elliptical::server
