#include "server/repository/model_repository.h"

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/log.h"

namespace elliptical::server {

namespace fs = std::filesystem;

absl::string_view ModelStateName(ModelState state) {
  switch (state) {
    case ModelState::kLoading: return "loading";
    case ModelState::kReady: return "ready";
    case ModelState::kFailed: return "failed";
  }
  return "?";
}

absl::StatusOr<std::unique_ptr<ModelRepository>> ModelRepository::Create(Options options) {
  std::error_code ec;
  if (!fs::is_directory(options.root, ec)) {
    return absl::NotFoundError(
        absl::StrCat("model repository ", options.root, " is not a directory"));
  }
  std::unique_ptr<ModelRepository> repo(new ModelRepository(options));
  absl::MutexLock lock(&repo->mu_);
  for (const auto& item : fs::directory_iterator(options.root, ec)) {
    if (!item.is_directory() || !fs::exists(item.path() / "config.json")) continue;
    const std::string name = item.path().filename().string();
    Entry& entry = repo->models_[name];
    entry.snapshot.name = name;
    entry.snapshot.directory = item.path().string();
  }
  if (ec) return absl::InternalError(absl::StrCat("reading ", options.root, ": ", ec.message()));
  return repo;
}

GenerationObservers ModelRepository::MakeGenerationObservers(const std::string& name) const {
  GenerationObservers observers;
  ServerMetrics* metrics = options_.metrics;
  if (!metrics) return observers;
  observers.on_finish = [metrics, name](const GenerationStream::Event& e) {
    if (e.status.ok()) {
      metrics->RecordGeneration(name, e.prompt_tokens, e.generated_tokens, e.time_to_first_token,
                                e.total);
    }
  };
  observers.stats_sample_rate = options_.attention_stats_sample_rate;
  observers.on_stats = [metrics, name](const std::vector<model::LayerStats>& stats) {
    metrics->RecordAttentionStats(name, stats);
  };
  return observers;
}

absl::Status ModelRepository::LoadOne(Entry* staged) {
  const std::string& dir_path = staged->snapshot.directory;
  auto dir = model::ReadModelDirectory(dir_path);
  if (!dir.ok()) return dir.status();
  staged->snapshot.family = dir->family;
  auto serving = ParseServingConfig(dir->config, options_.serving);
  if (!serving.ok()) {
    return absl::Status(serving.status().code(),
                        absl::StrCat(dir_path, "/config.json: ", serving.status().message()));
  }
  const std::string& name = staged->snapshot.name;
  ServerMetrics* metrics = options_.metrics;
  BatcherObserver batches;
  StatsSampling sampling;
  if (metrics) {
    batches.on_batch = [metrics, name](int size, absl::Duration compute) {
      metrics->RecordBatch(name, size, compute);
    };
    sampling.rate = options_.attention_stats_sample_rate;
    sampling.on_stats = [metrics, name](const std::vector<model::LayerStats>& stats) {
      metrics->RecordAttentionStats(name, stats);
    };
  }
  switch (dir->family) {
    case model::ModelFamily::kImageClassifier: {
      auto m = model::ImageClassifier::Load(dir_path, options_.load);
      if (!m.ok()) return m.status();
      staged->snapshot.description = (*m)->description();
      staged->classifier = std::make_shared<ClassifierServable>(
          name, std::shared_ptr<model::ImageClassifier>(*std::move(m)), serving->batching,
          &model::ImageClassifier::ClassifyPrepared, /*same_size_batches=*/false, batches, sampling);
      return absl::OkStatus();
    }
    case model::ModelFamily::kSegmenter: {
      auto m = model::ImageSegmenter::Load(dir_path, options_.load);
      if (!m.ok()) return m.status();
      staged->snapshot.description = (*m)->description();
      staged->segmenter = std::make_shared<SegmenterServable>(
          name, std::shared_ptr<model::ImageSegmenter>(*std::move(m)), serving->batching,
          &model::ImageSegmenter::SegmentPrepared, /*same_size_batches=*/true, batches, sampling);
      return absl::OkStatus();
    }
    case model::ModelFamily::kLanguageModel: {
      auto m = model::LanguageModel::Load(dir_path, options_.load);
      if (!m.ok()) return m.status();
      const std::string& tokenizer_path = (*m)->config().tokenizer_path;
      if (tokenizer_path.empty()) {
        return absl::InvalidArgumentError(absl::StrCat(
            dir_path, "/config.json names no \"tokenizer\"; Generate needs a SentencePiece model"));
      }
      std::string error;
      std::unique_ptr<Tokenizer> tokenizer = Tokenizer::Load(tokenizer_path, &error);
      if (!tokenizer) return absl::InvalidArgumentError(error);
      if (tokenizer->vocab_size() > (*m)->config().vocab_size) {
        return absl::InvalidArgumentError(absl::StrCat(
            "the tokenizer has ", tokenizer->vocab_size(), " pieces but the model's vocab_size is ",
            (*m)->config().vocab_size));
      }
      staged->snapshot.description = (*m)->description();
      staged->generator = std::make_shared<GenerationScheduler>(
          name, std::shared_ptr<model::LanguageModel>(*std::move(m)), std::move(tokenizer),
          serving->generation, MakeGenerationObservers(name));
      return absl::OkStatus();
    }
  }
  return absl::InternalError("unknown model family");
}

void ModelRepository::LoadAll() {
  std::vector<std::string> names;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [name, entry] : models_) names.push_back(name);
  }
  if (names.empty()) LogWarning("model repository %s holds no model directory", options_.root);
  for (const std::string& name : names) {
    Entry staged;
    {
      absl::MutexLock lock(&mu_);
      staged.snapshot = models_[name].snapshot;
    }
    const absl::Time start = absl::Now();
    absl::Status status = LoadOne(&staged);
    if (status.ok()) {
      staged.snapshot.state = ModelState::kReady;
      LogInfo("model %s ready on %s (%s) in %.2f s", name, staged.snapshot.description->device,
              staged.snapshot.description->dtype, absl::ToDoubleSeconds(absl::Now() - start));
    } else {
      staged.snapshot.state = ModelState::kFailed;
      staged.snapshot.reason = std::string(status.message());
      LogError("model %s failed to load: %s", name, status.message());
    }
    if (options_.metrics) options_.metrics->RegisterModel(name, staged.snapshot.state == ModelState::kReady);
    absl::MutexLock lock(&mu_);
    models_[name] = std::move(staged);
  }
}

std::vector<ModelSnapshot> ModelRepository::List() const {
  absl::MutexLock lock(&mu_);
  std::vector<ModelSnapshot> out;
  for (const auto& [name, entry] : models_) out.push_back(entry.snapshot);
  return out;
}

bool ModelRepository::Contains(const std::string& name) const {
  absl::MutexLock lock(&mu_);
  return models_.count(name) > 0;
}

absl::StatusOr<ModelSnapshot> ModelRepository::Describe(const std::string& name) const {
  absl::MutexLock lock(&mu_);
  auto it = models_.find(name);
  if (it == models_.end()) {
    return absl::NotFoundError(
        absl::StrCat("no model named \"", name, "\"; ListModels shows the models served"));
  }
  return it->second.snapshot;
}

absl::StatusOr<const ModelRepository::Entry*> ModelRepository::Ready(const std::string& name,
                                                                      model::ModelFamily family) const {
  auto it = models_.find(name);
  if (it == models_.end()) {
    return absl::NotFoundError(
        absl::StrCat("no model named \"", name, "\"; ListModels shows the models served"));
  }
  const Entry& entry = it->second;
  switch (entry.snapshot.state) {
    case ModelState::kLoading:
      return absl::UnavailableError(absl::StrCat("model \"", name, "\" is still loading"));
    case ModelState::kFailed:
      return absl::UnavailableError(
          absl::StrCat("model \"", name, "\" failed to load: ", entry.snapshot.reason));
    case ModelState::kReady:
      break;
  }
  if (entry.snapshot.family != family) {
    return absl::FailedPreconditionError(absl::StrCat(
        "model \"", name, "\" is a ",
        entry.snapshot.family ? model::FamilyName(*entry.snapshot.family) : "model", ", not a ",
        model::FamilyName(family)));
  }
  return &entry;
}

absl::StatusOr<std::shared_ptr<ClassifierServable>> ModelRepository::GetClassifier(
    const std::string& name) const {
  absl::MutexLock lock(&mu_);
  auto entry = Ready(name, model::ModelFamily::kImageClassifier);
  if (!entry.ok()) return entry.status();
  return (*entry)->classifier;
}

absl::StatusOr<std::shared_ptr<SegmenterServable>> ModelRepository::GetSegmenter(
    const std::string& name) const {
  absl::MutexLock lock(&mu_);
  auto entry = Ready(name, model::ModelFamily::kSegmenter);
  if (!entry.ok()) return entry.status();
  return (*entry)->segmenter;
}

absl::StatusOr<std::shared_ptr<GenerationScheduler>> ModelRepository::GetGenerator(
    const std::string& name) const {
  absl::MutexLock lock(&mu_);
  auto entry = Ready(name, model::ModelFamily::kLanguageModel);
  if (!entry.ok()) return entry.status();
  return (*entry)->generator;
}

std::vector<ModelRepository::ModelLoad> ModelRepository::Loads() const {
  absl::MutexLock lock(&mu_);
  std::vector<ModelLoad> out;
  for (const auto& [name, entry] : models_) {
    ModelLoad load;
    load.name = name;
    if (entry.classifier) load.queued_items = entry.classifier->queued_items();
    if (entry.segmenter) load.queued_items = entry.segmenter->queued_items();
    if (entry.generator) load.generation = entry.generator->load();
    if (entry.classifier || entry.segmenter || entry.generator) out.push_back(std::move(load));
  }
  return out;
}

void ModelRepository::Shutdown() {
  std::vector<Entry> entries;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [name, entry] : models_) entries.push_back(entry);
  }
  for (Entry& e : entries) {
    if (e.classifier) e.classifier->Shutdown();
    if (e.segmenter) e.segmenter->Shutdown();
    if (e.generator) e.generator->Shutdown();
  }
}

bool ModelRepository::AllLoaded() const {
  absl::MutexLock lock(&mu_);
  for (const auto& [name, entry] : models_) {
    if (entry.snapshot.state == ModelState::kLoading) return false;
  }
  return true;
}

}  // namespace elliptical::server
