#include "server/serving/servable_registry.h"

#include <fstream>
#include <sstream>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/blocking_counter.h"
#include "absl/time/clock.h"
#include "common/exception_guard.h"
#include "model/api/runtime.h"
#include "server/input/image_decoder.h"
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

// A warm-up that each instance thread runs before it takes its first batch; the loader waits
// for every instance.
struct InstanceWarmup {
  explicit InstanceWarmup(int instances) : done(instances) {}
  std::function<absl::Status(int instance)> run;  // null: no warm-up
  absl::BlockingCounter done;
  absl::Mutex mu;
  absl::Status error ABSL_GUARDED_BY(mu);
  int runs ABSL_GUARDED_BY(mu) = 0;
};

template <typename Servable>
typename Servable::Batcher::Options BatcherOptions(const ServableContext& c, const std::string& device,
                                                   std::shared_ptr<InstanceWarmup> warmup) {
  typename Servable::Batcher::Options o;
  o.batching = c.serving.batching;
  o.instances = c.serving.instances.count;
  // A lone batch (no other instance computing, nothing queued, none overlapping lately) takes
  // every instance's threads: one client then gets all the cores instead of its instance's
  // share. Under load each batch keeps its own share (thread_lending.h).
  const int per_instance = c.serving.instances.threads;
  const int all = per_instance * c.serving.instances.count;
  const bool lends = per_instance > 0 && all > per_instance && c.serving.instances.lend_idle_threads;
  // Each instance sizes its own intra-op pool, so N instances share the cores instead of each
  // taking all of them; then it warms up with those threads, as it will serve, and, where it
  // lends, with every instance's threads too: OpenMP starts a larger team the first time one is
  // asked for, which would otherwise fall on the first lone request (measured: 6 ms against 1.5).
  o.on_instance_start = [per_instance, all, lends, warmup, device](int instance) {
    if (per_instance > 0) model::SetComputeThreadsForThisThread(per_instance);
    // On a GPU each instance queues its batches on a stream of its own (a no-op on the CPU).
    model::UseOwnStreamOnThisThread(device);
    if (warmup->run) {
      std::vector<int> thread_counts = {per_instance};
      if (lends) thread_counts.push_back(all);
      for (int threads : thread_counts) {
        if (lends) model::SetBatchComputeThreads(threads);
        absl::Status s = warmup->run(instance);
        absl::MutexLock lock(&warmup->mu);
        if (s.ok()) ++warmup->runs;
        if (!s.ok() && warmup->error.ok()) warmup->error = s;
      }
      if (lends) model::SetBatchComputeThreads(per_instance);
    }
    warmup->done.DecrementCount();
  };
  if (lends) {
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

// The warm-up file a model's config names (warmup.input), bounded: it is read whole.
absl::StatusOr<std::string> ReadWarmupFile(const ServableContext& c) {
  constexpr int64_t kMaxBytes = 16 << 20;
  const std::string path = c.dir.path + "/" + c.serving.warmup.input;
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot read (config.json's warmup.input)"));
  std::string bytes(static_cast<size_t>(kMaxBytes) + 1, '\0');
  in.read(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  bytes.resize(static_cast<size_t>(in.gcount()));
  if (static_cast<int64_t>(bytes.size()) > kMaxBytes) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": a warm-up input is at most 16 MiB"));
  }
  return bytes;
}

// The image a vision model warms up on: the configured file, else a synthetic gradient of the
// model's own input size (the values do not matter to the kernels chosen; the shapes do).
absl::StatusOr<model::RgbImage> WarmupImage(const ServableContext& c, int image_size) {
  if (!c.serving.warmup.input.empty()) {
    auto bytes = ReadWarmupFile(c);
    if (!bytes.ok()) return bytes.status();
    auto image = DecodeImage(*bytes, ImageLimits{});
    if (!image.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(c.dir.path, "/", c.serving.warmup.input, ": ",
                                                     image.status().message()));
    }
    return image;
  }
  model::RgbImage image;
  image.width = image.height = std::max(1, image_size);
  image.pixels.resize(static_cast<size_t>(image.width) * image.height * 3);
  for (size_t i = 0; i < image.pixels.size(); ++i) image.pixels[i] = static_cast<uint8_t>((i * 7) % 251);
  return image;
}

template <typename ServableT, typename ModelT>
absl::StatusOr<std::shared_ptr<Servable>> LoadVision(const ServableContext& c, std::unique_ptr<ModelT> loaded,
                                                     typename ServableT::RunPrepared run, bool same_size_batches,
                                                     WarmupReport* report) {
  std::shared_ptr<ModelT> m(std::move(loaded));
  auto warmup = std::make_shared<InstanceWarmup>(std::max(1, c.serving.instances.count));
  std::vector<int> sizes;
  if (c.warmup && c.serving.warmup.enabled) {
    auto image = WarmupImage(c, m->description().image_size);
    if (!image.ok()) return image.status();
    auto prepared = m->Prepare(*image);
    if (!prepared.ok()) return prepared.status();
    sizes = WarmupBatchSizes(c.serving.warmup, c.serving.batching.max_batch_size);
    warmup->run = [m, run, sizes, prepared = *std::move(prepared), name = c.name](int) -> absl::Status {
      for (int size : sizes) {
        std::vector<const model::PreparedImage*> batch(static_cast<size_t>(size), prepared.get());
        auto result = GuardExceptions(name, "warm-up", [&] { return ((*m).*run)(batch, false, [] { return false; }); });
        if (!result.ok()) return absl::Status(result.status().code(), absl::StrCat("warm-up at batch size ", size, ": ", result.status().message()));
      }
      return absl::OkStatus();
    };
  }
  const absl::Time start = absl::Now();
  auto servable = std::make_shared<ServableT>(c.name, m,
                                              BatcherOptions<ServableT>(c, m->description().device, warmup),
                                              run, same_size_batches, Sampling(c));
  warmup->done.Wait();
  absl::MutexLock lock(&warmup->mu);
  if (!warmup->error.ok()) return warmup->error;
  if (warmup->run) {
    report->duration = absl::Now() - start;
    report->runs = warmup->runs * static_cast<int>(sizes.size());
  }
  return servable;
}

absl::StatusOr<std::shared_ptr<Servable>> LoadClassifier(const ServableContext& c, WarmupReport* report) {
  auto m = model::ImageClassifier::Load(c.dir.path, c.load);
  if (!m.ok()) return m.status();
  return LoadVision<ClassifierServable>(c, *std::move(m), &model::ImageClassifier::ClassifyPrepared,
                                        /*same_size_batches=*/false, report);
}

absl::StatusOr<std::shared_ptr<Servable>> LoadSegmenter(const ServableContext& c, WarmupReport* report) {
  auto m = model::ImageSegmenter::Load(c.dir.path, c.load);
  if (!m.ok()) return m.status();
  return LoadVision<SegmenterServable>(c, *std::move(m), &model::ImageSegmenter::SegmentPrepared,
                                       /*same_size_batches=*/true, report);
}

// `warming` is true while the model warms up: its generations are not the clients'.
GenerationObservers Observers(const ServableContext& c, std::shared_ptr<std::atomic<bool>> warming) {
  GenerationObservers observers;
  if (!c.metrics) return observers;
  observers.on_finish = [metrics = c.metrics, name = c.name, warming](const GenerationStream::Event& e) {
    // A scoring request generates nothing: the generation metrics (time to first token, tokens
    // out) are about generations; Score calls are counted by the request metrics.
    if (e.score_only || warming->load()) return;
    metrics->RecordGeneration(name, e.prompt_tokens, e.generated_tokens, e.time_to_first_token, e.total,
                              /*completed=*/e.status.ok());
  };
  observers.stats_sample_rate = c.attention_stats_sample_rate;
  observers.on_stats = [warming, stats = Sampling(c).on_stats](const std::vector<model::LayerStats>& layers) {
    if (!warming->load()) stats(layers);
  };
  return observers;
}

// Runs `sequences` generations at once from `prompt`, a few tokens each, and waits for them.
absl::Status WarmupGenerations(LanguageServable& servable, const std::string& prompt, int sequences) {
  constexpr absl::Duration kPatience = absl::Minutes(5);
  GenerationParams params;
  params.prompt = prompt;
  params.max_new_tokens = 4;
  params.seed = 1;
  std::vector<std::shared_ptr<GenerationStream>> streams;
  for (int i = 0; i < sequences; ++i) {
    auto stream = servable.Submit(params);
    if (!stream.ok()) return stream.status();
    streams.push_back(*std::move(stream));
  }
  for (const auto& stream : streams) {
    GenerationStream::Event event;
    do {
      if (!stream->Next(kPatience, &event)) return absl::DeadlineExceededError("warm-up generation took over 5 minutes");
    } while (!event.final);
    if (!event.status.ok()) return event.status;
  }
  return absl::OkStatus();
}

// A language model warms up at each batch-size bucket of running sequences, from a short and a
// long prompt (its two prefill shapes' kernels; decode steps run at every bucket).
absl::Status WarmupLanguageModel(const ServableContext& c, LanguageServable& servable, int max_positions,
                                 WarmupReport* report) {
  std::vector<std::string> prompts;
  if (!c.serving.warmup.input.empty()) {
    auto text = ReadWarmupFile(c);
    if (!text.ok()) return text.status();
    prompts.push_back(*std::move(text));
  } else {
    std::string long_prompt;
    // About a quarter of the context: one token per word for most tokenizers.
    for (int i = 0; i < std::max(1, max_positions / 4 - 8); ++i) long_prompt += "and the ";
    prompts = {"In the beginning", long_prompt};
  }
  const absl::Time start = absl::Now();
  for (int size : WarmupBatchSizes(c.serving.warmup, c.serving.generation.max_running)) {
    for (const std::string& prompt : prompts) {
      absl::Status s = WarmupGenerations(servable, prompt, size);
      if (!s.ok()) return absl::Status(s.code(), absl::StrCat("warm-up with ", size, " sequences: ", s.message()));
      report->runs += size;
    }
  }
  report->duration = absl::Now() - start;
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<Servable>> LoadLanguageModel(const ServableContext& c, WarmupReport* report) {
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
  const int max_positions = (*m)->config().shape.max_positions;
  auto warming = std::make_shared<std::atomic<bool>>(true);
  GenerationObservers observers = Observers(c, warming);
  // A stream of its own on a GPU, as each vision instance has.
  observers.on_thread_start = [device = (*m)->description().device] { model::UseOwnStreamOnThisThread(device); };
  auto servable = std::make_shared<LanguageServable>(std::make_unique<GenerationScheduler>(
      c.name, std::shared_ptr<model::LanguageModel>(*std::move(m)), std::move(tokenizer), limits,
      std::move(observers)));
  if (c.warmup && c.serving.warmup.enabled) {
    absl::Status s = WarmupLanguageModel(c, *servable, max_positions, report);
    if (!s.ok()) {
      servable->Shutdown();
      return s;
    }
  }
  warming->store(false);
  return servable;
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

absl::StatusOr<std::shared_ptr<Servable>> LoadServable(const ServableContext& context, WarmupReport* warmup) {
  ServableLoader load = LoaderFor(context.dir.family);
  if (!load) {
    return absl::InvalidArgumentError(absl::StrCat(context.dir.path, ": no server support for a ",
                                                   model::FamilyName(context.dir.family)));
  }
  return load(context, warmup);
}

}  // namespace elliptical::server
