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

absl::Status ModelRepository::LoadOne(Entry* staged) {
  auto dir = model::ReadModelDirectory(staged->snapshot.directory);
  if (!dir.ok()) return dir.status();
  staged->snapshot.family = dir->family;
  if (dir->family != model::ModelFamily::kImageClassifier) {
    return absl::UnimplementedError(absl::StrCat("model family ", model::FamilyName(dir->family),
                                                 " is not served by this version"));
  }
  auto classifier = model::ImageClassifier::Load(staged->snapshot.directory, options_.load);
  if (!classifier.ok()) return classifier.status();
  staged->snapshot.description = (*classifier)->description();
  staged->classifier = std::move(*classifier);
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
      LogInfo("model %s ready on %s (%s) in %.2f s", name, staged.snapshot.description->device,
              staged.snapshot.description->dtype, absl::ToDoubleSeconds(absl::Now() - start));
    } else {
      staged.snapshot.state = ModelState::kFailed;
      staged.snapshot.reason = std::string(status.message());
      LogError("model %s failed to load: %s", name, status.message());
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

absl::StatusOr<ModelSnapshot> ModelRepository::Describe(const std::string& name) const {
  absl::MutexLock lock(&mu_);
  auto it = models_.find(name);
  if (it == models_.end()) {
    return absl::NotFoundError(
        absl::StrCat("no model named \"", name, "\"; ListModels shows the models served"));
  }
  return it->second.snapshot;
}

absl::StatusOr<std::shared_ptr<model::ImageClassifier>> ModelRepository::GetClassifier(
    const std::string& name) const {
  absl::MutexLock lock(&mu_);
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
  if (!entry.classifier) {
    return absl::FailedPreconditionError(absl::StrCat(
        "model \"", name, "\" is a ",
        entry.snapshot.family ? model::FamilyName(*entry.snapshot.family) : "model",
        ", not an image classifier"));
  }
  return entry.classifier;
}

bool ModelRepository::AllLoaded() const {
  absl::MutexLock lock(&mu_);
  for (const auto& [name, entry] : models_) {
    if (entry.snapshot.state == ModelState::kLoading) return false;
  }
  return true;
}

}  // namespace elliptical::server
