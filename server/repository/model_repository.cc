#include "server/repository/model_repository.h"

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/time/clock.h"
#include "common/status_macros.h"
#include "model/config/config_schema.h"
#include "server/log.h"
#include "server/serving/servable_registry.h"

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

namespace {

// `message` with the repository's own path (as given and as an absolute path) removed from the
// paths it quotes: "/srv/models/vit/config.json: ..." becomes "vit/config.json: ...".
std::string WithinRepository(absl::string_view message, const std::string& root) {
  std::error_code ec;
  std::vector<std::string> prefixes = {fs::absolute(root, ec).lexically_normal().string(),
                                       fs::path(root).lexically_normal().string(), root};
  std::string out(message);
  for (std::string prefix : prefixes) {
    while (!prefix.empty() && prefix.back() == '/') prefix.pop_back();
    if (prefix.empty() || prefix == ".") continue;
    out = absl::StrReplaceAll(out, {{prefix + "/", ""}});
  }
  return out;
}

}  // namespace

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

absl::Status ModelRepository::LoadOne(Entry* staged) {
  const std::string& dir_path = staged->snapshot.directory;
  auto dir = model::ReadModelDirectory(dir_path);
  if (!dir.ok()) return dir.status();
  staged->snapshot.family = dir->family;
  // A misspelled key would otherwise be ignored and the model served with a default.
  model::KeySchema schema = model::FamilyKeys(dir->family);
  model::Merge(model::ServingKeys(), &schema);
  ELLIPTICAL_RETURN_IF_ERROR(model::CheckKnownKeys(dir->config, schema, dir_path + "/config.json"));
  auto serving = ParseServingConfig(dir->config, options_.serving);
  if (!serving.ok()) {
    return absl::Status(serving.status().code(),
                        absl::StrCat(dir_path, "/config.json: ", serving.status().message()));
  }
  staged->snapshot.input_form = serving->input_form;
  ServableContext context;
  context.name = staged->snapshot.name;
  context.dir = *std::move(dir);
  context.serving = *std::move(serving);
  context.load = options_.load;
  context.metrics = options_.metrics;
  context.attention_stats_sample_rate = options_.attention_stats_sample_rate;
  auto servable = LoadServable(context);
  if (!servable.ok()) return servable.status();
  staged->snapshot.description = (*servable)->description();
  staged->servable = *std::move(servable);
  return absl::OkStatus();
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
      const model::ModelDescription& d = *staged.snapshot.description;
      LogInfo("model %s ready on %s in %s (%s) in %.2f s", name, d.device, d.dtype, d.dtype_reason,
              absl::ToDoubleSeconds(absl::Now() - start));
    } else {
      staged.snapshot.state = ModelState::kFailed;
      // Clients see paths within the repository; the server's own layout stays in the log.
      staged.snapshot.reason = WithinRepository(status.message(), options_.root);
      LogError("model %s failed to load: %s", name, status.message());
    }
    if (options_.metrics) {
      // A model that loaded gets the standard names of its family too (metrics/standard_metrics.h).
      std::optional<model::ModelFamily> family;
      if (staged.snapshot.state == ModelState::kReady && staged.snapshot.description) {
        family = staged.snapshot.description->family;
      }
      options_.metrics->RegisterModel(name, staged.snapshot.state == ModelState::kReady, family);
      if (staged.snapshot.description) {
        const model::ModelDescription& d = *staged.snapshot.description;
        options_.metrics->RecordPrecision(name, d.device, d.dtype, d.dtype_source);
      }
    }
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

std::vector<ModelRepository::ModelLoad> ModelRepository::Loads() const {
  absl::MutexLock lock(&mu_);
  std::vector<ModelLoad> out;
  for (const auto& [name, entry] : models_) {
    if (entry.servable) out.push_back({name, entry.servable->load()});
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
    if (e.servable) e.servable->Shutdown();
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
