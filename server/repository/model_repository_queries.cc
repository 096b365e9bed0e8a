// ModelRepository's read side: what the repository holds (Index, List, Describe), the servable
// a request gets (GetServable), readiness and load. The lifecycle (loads, reloads, unloads,
// polling, draining) is in model_repository.cc.
#include "server/repository/model_repository.h"

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace elliptical::server {
namespace {

absl::Status NoSuchModel(const std::string& name) {
  return absl::NotFoundError(absl::StrCat("no model named \"", name, "\"; ListModels shows the models served"));
}

}  // namespace

ModelSnapshot ModelRepository::Placeholder(const std::string& name, const Model& model) {
  ModelSnapshot s;
  s.name = name;
  s.directory = model.directory;
  s.family = model.family;
  s.state = model.state;
  s.reason = model.reason;
  return s;
}

ModelSnapshot ModelRepository::Representative(const std::string& name, const Model& model) {
  const std::vector<int64_t> ready = ReadyVersions(model);
  ModelSnapshot s = !ready.empty() ? model.versions.at(ready.front()).snapshot
                    : !model.versions.empty() && model.state != ModelState::kUnavailable
                        ? model.versions.begin()->second.snapshot
                        : Placeholder(name, model);
  if (ready.empty() && model.state == ModelState::kFailed && !model.reason.empty()) s.reason = model.reason;
  s.ready_versions = ready;
  return s;
}

absl::Status ModelRepository::NoSuchVersion(const std::string& name, int64_t version, const Model& model) {
  return absl::NotFoundError(absl::StrCat("model \"", name, "\" has no version ", version, "; ready versions: [",
                                          absl::StrJoin(ReadyVersions(model), ", "), "]"));
}

std::vector<int64_t> ModelRepository::ReadyVersions(const Model& model) {
  std::vector<int64_t> out;
  for (const auto& [v, version] : model.versions) {
    if (version.snapshot.state == ModelState::kReady) out.push_back(v);
  }
  return out;
}

std::vector<ModelSnapshot> ModelRepository::Index(bool ready_only) const {
  // What the directory holds, read before the lock: every version on disk is listed, the ones
  // not loaded as UNAVAILABLE.
  std::map<std::string, std::map<int64_t, std::string>> on_disk;  // name -> version -> directory
  if (!ready_only) {
    if (auto names = ListModelDirectories(options_.root); names.ok()) {
      for (const std::string& name : *names) {
        auto& versions = on_disk[name];
        if (auto found = ReadModelVersions(options_.root, name, /*fingerprint=*/false); found.ok()) {
          for (const auto& [v, dir] : found->found) versions[v] = dir.path;
        }
      }
    }
  }
  absl::MutexLock lock(&mu_);
  std::vector<ModelSnapshot> out;
  for (const auto& [name, model] : models_) {
    for (const auto& [v, version] : model.versions) {
      if (ready_only && version.snapshot.state != ModelState::kReady) continue;
      out.push_back(version.snapshot);
    }
  }
  if (ready_only) return out;
  for (const auto& [name, model] : models_) on_disk[name];  // known models, on disk or not
  for (const auto& [name, versions] : on_disk) {
    auto known = models_.find(name);
    bool any = known != models_.end() && !known->second.versions.empty();
    for (const auto& [v, directory] : versions) {
      if (known != models_.end() && known->second.versions.count(v)) continue;
      ModelSnapshot s;
      s.name = name;
      s.version = v;
      s.directory = directory;
      s.state = ModelState::kUnavailable;
      s.reason = known != models_.end() && known->second.wanted ? "not served by the version policy" : "not loaded";
      out.push_back(std::move(s));
      any = true;
    }
    if (!any) {
      if (known != models_.end()) {
        out.push_back(Placeholder(name, known->second));
      } else {
        ModelSnapshot s;
        s.name = name;
        s.state = ModelState::kUnavailable;
        s.reason = "not loaded";
        out.push_back(std::move(s));
      }
    }
  }
  std::sort(out.begin(), out.end(), [](const ModelSnapshot& a, const ModelSnapshot& b) {
    return a.name != b.name ? a.name < b.name : a.version > b.version;
  });
  return out;
}

std::vector<ModelSnapshot> ModelRepository::List() const {
  absl::MutexLock lock(&mu_);
  std::vector<ModelSnapshot> out;
  for (const auto& [name, model] : models_) {
    out.push_back(Representative(name, model));
  }
  return out;
}

absl::StatusOr<ModelRepository::Found> ModelRepository::Find(const std::string& name,
                                                             absl::string_view version) const {
  auto v = ParseVersion(name, version);
  if (!v.ok()) return v.status();
  auto it = models_.find(name);
  if (it == models_.end()) return NoSuchModel(name);
  Found found{&it->second, *v, nullptr};
  if (*v == 0) return found;
  auto named = it->second.versions.find(*v);
  if (named == it->second.versions.end()) return NoSuchVersion(name, *v, it->second);
  found.version = &named->second;
  return found;
}

bool ModelRepository::Contains(const std::string& name) const {
  absl::MutexLock lock(&mu_);
  return models_.count(name) > 0;
}

absl::StatusOr<ModelSnapshot> ModelRepository::Describe(const std::string& name, absl::string_view version) const {
  absl::MutexLock lock(&mu_);
  auto found = Find(name, version);
  if (!found.ok()) return found.status();
  if (!found->version) return Representative(name, *found->model);
  ModelSnapshot s = found->version->snapshot;
  s.ready_versions = ReadyVersions(*found->model);
  return s;
}

absl::StatusOr<std::shared_ptr<Servable>> ModelRepository::GetServable(const std::string& name,
                                                                       absl::string_view version,
                                                                       model::ModelFamily family,
                                                                       int64_t* served_version) const {
  absl::MutexLock lock(&mu_);
  auto found = Find(name, version);
  if (!found.ok()) return found.status();
  const Model& model = *found->model;
  const Version* chosen = found->version;
  if (!chosen) {
    for (const auto& [number, candidate] : model.versions) {
      if (candidate.servable) {
        chosen = &candidate;
        break;
      }
    }
    if (!chosen) {
      switch (model.state) {
        case ModelState::kLoading:
          return absl::UnavailableError(absl::StrCat("model \"", name, "\" is still loading"));
        case ModelState::kFailed:
          return absl::UnavailableError(absl::StrCat("model \"", name, "\" failed to load: ", model.reason));
        default:
          return absl::UnavailableError(absl::StrCat("model \"", name, "\" is not loaded",
                                                     model.reason.empty() ? "" : absl::StrCat(" (", model.reason, ")")));
      }
    }
  } else if (!chosen->servable) {
    const ModelSnapshot& s = chosen->snapshot;
    return absl::UnavailableError(absl::StrCat("model \"", name, "\" version ", found->number, " is ",
                                               ModelStateName(s.state), s.reason.empty() ? "" : absl::StrCat(": ", s.reason)));
  }
  if (chosen->snapshot.family != family) {
    return absl::FailedPreconditionError(absl::StrCat(
        "model \"", name, "\" is a ",
        chosen->snapshot.family ? model::FamilyName(*chosen->snapshot.family) : "model", ", not a ",
        model::FamilyName(family)));
  }
  if (served_version) *served_version = chosen->snapshot.version;
  return chosen->servable;
}

bool ModelRepository::ServerReady() const {
  absl::MutexLock lock(&mu_);
  if (!started_ || shut_down_) return false;
  bool any = false;
  for (const auto& [name, model] : models_) {
    const bool ready = !ReadyVersions(model).empty();
    any = any || ready;
    if (options_.strict_readiness && model.wanted && !ready) return false;
  }
  return any;
}

bool ModelRepository::ModelReady(const std::string& name) const {
  absl::MutexLock lock(&mu_);
  auto it = models_.find(name);
  return it != models_.end() && !ReadyVersions(it->second).empty();
}

std::vector<ModelRepository::ModelLoad> ModelRepository::Loads() const {
  absl::MutexLock lock(&mu_);
  std::vector<ModelLoad> out;
  for (const auto& [name, model] : models_) {
    if (!model.family) continue;  // never read: no series yet
    ModelLoad sum{name, {}};
    // A model with nothing serving reports zero load, so its gauges drop after an unload.
    if (model.family == model::ModelFamily::kLanguageModel) sum.load.generation = GenerationLoad{};
    for (const auto& [v, version] : model.versions) {
      if (!version.servable) continue;
      const ServableLoad l = version.servable->load();
      sum.load.queued_items += l.queued_items;
      sum.load.instances += l.instances;
      sum.load.busy_instances += l.busy_instances;
      if (l.generation) {
        if (!sum.load.generation) sum.load.generation = GenerationLoad{};
        GenerationLoad& g = *sum.load.generation;
        g.running += l.generation->running;
        g.waiting += l.generation->waiting;
        g.cache_slots += l.generation->cache_slots;
        g.cache_slots_used += l.generation->cache_slots_used;
        g.cache_bytes_allocated += l.generation->cache_bytes_allocated;
        g.cache_bytes_used += l.generation->cache_bytes_used;
        g.slot_tokens = l.generation->slot_tokens;
      }
    }
    out.push_back(std::move(sum));
  }
  return out;
}

}  // namespace elliptical::server
