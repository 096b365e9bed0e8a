#include "server/repository/model_repository.h"

#include <algorithm>
#include <filesystem>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
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
    case ModelState::kUnavailable: return "unavailable";
    case ModelState::kUnloading: return "unloading";
  }
  return "?";
}

absl::StatusOr<ControlMode> ParseControlMode(absl::string_view value) {
  if (value == "none") return ControlMode::kNone;
  if (value == "explicit") return ControlMode::kExplicit;
  if (value == "poll") return ControlMode::kPoll;
  return absl::InvalidArgumentError(
      absl::StrCat("--model_control_mode=", value, ": expected none, explicit or poll"));
}

absl::string_view ControlModeName(ControlMode mode) {
  switch (mode) {
    case ControlMode::kNone: return "none";
    case ControlMode::kExplicit: return "explicit";
    case ControlMode::kPoll: return "poll";
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

double MiB(int64_t bytes) { return static_cast<double>(bytes) / (1 << 20); }

bool Named(const std::vector<std::string>& names, const std::string& name) {
  return std::find(names.begin(), names.end(), "*") != names.end() ||
         std::find(names.begin(), names.end(), name) != names.end();
}

}  // namespace

ModelRepository::ModelRepository(Options options)
    : options_(std::move(options)), retirement_(ServableRetirement::Start()), alive_(std::make_shared<Alive>()) {
  absl::MutexLock lock(&alive_->mu);
  alive_->repository = this;
}

ModelRepository::~ModelRepository() {
  Shutdown();
  std::vector<std::shared_ptr<Servable>> held;
  {
    absl::MutexLock lock(&mu_);
    for (auto& [name, model] : models_) {
      for (auto& [v, version] : model.versions) {
        if (version.servable) held.push_back(std::move(version.servable));
      }
    }
  }
  held.clear();  // freed by the retirement thread, which Stop() below waits for
  {
    absl::MutexLock lock(&alive_->mu);  // waits for a drain callback in progress
    alive_->repository = nullptr;
  }
  retirement_->Stop();
}

absl::StatusOr<std::unique_ptr<ModelRepository>> ModelRepository::Create(Options options) {
  auto names = ListModelDirectories(options.root);
  if (!names.ok()) return names.status();
  std::unique_ptr<ModelRepository> repo(new ModelRepository(options));
  absl::MutexLock lock(&repo->mu_);
  for (const std::string& name : *names) {
    Model& model = repo->models_[name];
    model.directory = (fs::path(options.root) / name).string();
    model.wanted = options.control_mode != ControlMode::kExplicit || Named(options.startup_models, name);
    model.state = model.wanted ? ModelState::kLoading : ModelState::kUnavailable;
    if (!model.wanted) model.reason = "not loaded (--model_control_mode=explicit: load it through the repository API)";
  }
  return repo;
}

void ModelRepository::Changed() const {
  if (options_.on_change) options_.on_change();
}

void ModelRepository::Record(const std::string& name, int64_t version, const char* action, const char* outcome,
                             absl::Duration duration) const {
  if (options_.metrics) options_.metrics->RecordModelLifecycle(name, version, action, outcome, duration);
}

void ModelRepository::LoadAll() {
  std::vector<std::string> names;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [name, model] : models_) {
      if (model.wanted) names.push_back(name);
    }
    if (options_.control_mode == ControlMode::kExplicit) {
      // A name --load_model gives that is not in the repository fails now, by name.
      for (const std::string& n : options_.startup_models) {
        if (n != "*" && !models_.count(n)) names.push_back(n);
      }
    }
  }
  if (names.empty()) {
    LogWarning("model repository %s: no model to load%s", options_.root,
               options_.control_mode == ControlMode::kExplicit ? " (--model_control_mode=explicit, no --load_model)" : "");
  }
  for (const std::string& name : names) {
    absl::MutexLock ops(&ops_mu_);
    // Apply logs what fails to load; a name --load_model gives that is no model is logged here.
    if (absl::Status s = Apply(name, /*force=*/false, "load"); s.code() == absl::StatusCode::kNotFound) {
      LogError("--load_model=%s: %s", name, s.message());
    }
  }
  {
    absl::MutexLock lock(&mu_);
    started_ = true;
  }
  Changed();
  if (options_.control_mode == ControlMode::kPoll) {
    poller_ = std::thread([this] { PollLoop(); });
  }
}

absl::Status ModelRepository::CheckControl(const char* verb) const {
  if (options_.control_mode == ControlMode::kExplicit) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      "cannot ", verb, " models: the server runs with --model_control_mode=", ControlModeName(options_.control_mode),
      options_.control_mode == ControlMode::kPoll ? " (it follows the repository directory)" : "",
      "; the repository API changes models under --model_control_mode=explicit"));
}

absl::Status ModelRepository::LoadModel(const std::string& name) {
  ELLIPTICAL_RETURN_IF_ERROR(CheckModelName(name));
  ELLIPTICAL_RETURN_IF_ERROR(CheckControl("load"));
  absl::MutexLock ops(&ops_mu_);
  bool loaded = false;
  {
    absl::MutexLock lock(&mu_);
    if (shut_down_) return absl::UnavailableError("the server is shutting down");
    auto it = models_.find(name);
    loaded = it != models_.end() && !ReadyVersions(it->second).empty();
  }
  return Apply(name, /*force=*/true, loaded ? "reload" : "load");
}

absl::Status ModelRepository::UnloadModel(const std::string& name) {
  ELLIPTICAL_RETURN_IF_ERROR(CheckModelName(name));
  ELLIPTICAL_RETURN_IF_ERROR(CheckControl("unload"));
  absl::MutexLock ops(&ops_mu_);
  return Unload(name, "unload");
}

absl::Status ModelRepository::Unload(const std::string& name, const char* action) {
  const absl::Time start = absl::Now();
  std::vector<std::shared_ptr<Servable>> released;  // dropped outside the lock
  std::vector<int64_t> versions;
  {
    absl::MutexLock lock(&mu_);
    auto it = models_.find(name);
    if (it == models_.end()) {
      return absl::NotFoundError(absl::StrCat("no model named \"", name, "\" in the repository"));
    }
    Model& model = it->second;
    model.wanted = false;
    model.state = ModelState::kUnavailable;
    model.reason = "unloaded";
    for (auto& [v, version] : model.versions) {
      if (!version.servable) {
        if (version.snapshot.state != ModelState::kUnloading) {
          version.snapshot.state = ModelState::kUnavailable;
          version.snapshot.reason = "unloaded";
        }
        continue;
      }
      released.push_back(TakeOutOfService(&version, "unloading: finishing the requests it accepted"));
      versions.push_back(v);
    }
  }
  Changed();
  released.clear();
  for (int64_t v : versions) {
    LogInfo("model %s version %d unloaded; it finishes the requests it accepted", name, v);
    Record(name, v, action, "ok", absl::Now() - start);
  }
  if (options_.metrics) options_.metrics->SetModelReady(name, ModelReady(name));
  return absl::OkStatus();
}

absl::Status ModelRepository::Apply(const std::string& name, bool force, const char* action) {
  auto found = ReadModelVersions(options_.root, name);
  if (!found.ok()) {
    const bool gone = found.status().code() == absl::StatusCode::kNotFound;
    bool known = false;
    {
      absl::MutexLock lock(&mu_);
      auto it = models_.find(name);
      known = it != models_.end();
      if (known && !gone) {
        // A bad model-level config: what serves keeps serving; a model with nothing serving fails.
        it->second.reason = WithinRepository(found.status().message(), options_.root);
        if (ReadyVersions(it->second).empty()) it->second.state = ModelState::kFailed;
      }
    }
    if (known && gone && options_.control_mode == ControlMode::kPoll) {
      // Its directory was removed: poll mode unloads it (it is known, so Unload cannot fail).
      Unload(name, "unload").IgnoreError();
      absl::MutexLock lock(&mu_);
      models_.erase(name);
      return found.status();
    }
    if (known) Changed();
    if (!gone) LogError("model %s: %s", name, found.status().message());
    // A name that is no model gets no series: clients choose the names, the metrics stay bounded.
    if (known || !gone) Record(name, 0, action, "failed", absl::ZeroDuration());
    return absl::Status(found.status().code(), WithinRepository(found.status().message(), options_.root));
  }

  {
    absl::MutexLock lock(&mu_);
    Model& model = models_[name];
    model.directory = (fs::path(options_.root) / name).string();
    model.wanted = true;
    model.reason.clear();
    // What serves now keeps serving until a version the policy wants is ready (below).
    if (found->wanted.empty()) {
      model.reason = WithinRepository(found->why_none, options_.root);
      if (ReadyVersions(model).empty()) model.state = ModelState::kFailed;
    } else if (ReadyVersions(model).empty()) {
      model.state = ModelState::kLoading;
    }
  }
  Changed();
  if (found->wanted.empty()) {
    Record(name, 0, action, "failed", absl::ZeroDuration());
    if (options_.metrics) options_.metrics->SetModelReady(name, ModelReady(name));
    return absl::FailedPreconditionError(WithinRepository(found->why_none, options_.root));
  }

  absl::Status first_error;
  for (int64_t v : found->wanted) {
    const VersionDirectory& dir = found->found.at(v);
    bool serving = false;
    {
      absl::MutexLock lock(&mu_);
      Version& version = models_[name].versions[v];
      serving = version.servable != nullptr;
      // Unchanged since it loaded, or since it failed: a failed version is tried again once its
      // directory changes (or on an explicit load), not on every poll.
      if (!force && version.fingerprint == dir.fingerprint &&
          (serving || version.snapshot.state == ModelState::kFailed)) {
        continue;
      }
      if (!serving) {
        version.snapshot.name = name;
        version.snapshot.version = v;
        version.snapshot.directory = dir.path;
        version.snapshot.state = ModelState::kLoading;
        version.snapshot.reason.clear();
      }
    }
    Changed();
    const char* what = serving ? "reload" : action;
    const absl::Time start = absl::Now();
    ModelSnapshot snapshot;
    snapshot.name = name;
    snapshot.version = v;
    snapshot.directory = dir.path;
    auto servable = LoadVersion(name, dir, &snapshot);
    const absl::Duration took = absl::Now() - start;
    std::shared_ptr<Servable> old;
    {
      absl::MutexLock lock(&mu_);
      Model& model = models_[name];
      Version& version = model.versions[v];
      if (!servable.ok()) {
        const std::string reason = WithinRepository(servable.status().message(), options_.root);
        if (version.servable) {
          version.snapshot.reason = absl::StrCat("reload failed, the previous load serves: ", reason);
        } else {
          version.snapshot = snapshot;
          version.snapshot.state = ModelState::kFailed;
          version.snapshot.reason = reason;
          version.fingerprint = dir.fingerprint;
        }
        if (model.family == std::nullopt) model.family = snapshot.family;
      } else {
        snapshot.state = ModelState::kReady;
        const uint64_t generation = next_generation_++;
        old = std::move(version.servable);
        version.servable = Lease(name, v, generation, *std::move(servable), snapshot.report.memory_bytes);
        version.snapshot = snapshot;
        version.fingerprint = dir.fingerprint;
        version.generation = generation;
        model.family = snapshot.family;
        model.state = ModelState::kReady;
      }
    }
    if (!servable.ok()) {
      LogError("model %s version %d failed to %s: %s", name, v, what, servable.status().message());
      Record(name, v, what, servable.status().code() == absl::StatusCode::kResourceExhausted ? "refused" : "failed",
             took);
      if (first_error.ok()) {
        first_error = absl::Status(servable.status().code(),
                                   absl::StrCat("model \"", name, "\" version ", v, ": ",
                                                WithinRepository(servable.status().message(), options_.root)));
      }
    } else {
      const ModelSnapshot& s = snapshot;
      LogInfo("model %s version %d %s on %s in %s (%s): loaded in %.2f s, warmed up in %.2f s (%d runs)%s", name, v,
              serving ? "reloaded" : "ready", s.description->device, s.description->dtype, s.description->dtype_reason,
              absl::ToDoubleSeconds(s.report.load), absl::ToDoubleSeconds(s.report.warmup), s.report.warmup_runs,
              serving ? "; the previous load finishes its accepted requests" : "");
      Record(name, v, what, "ok", took);
      if (options_.metrics) {
        options_.metrics->RecordWarmup(name, s.report.warmup);
        const model::ModelDescription& d = *s.description;
        options_.metrics->RecordPrecision(name, d.device, d.dtype, d.dtype_source);
      }
    }
    old.reset();  // the previous load drains (servable_retirement.h)
    Changed();
  }
  // Versions the policy no longer serves stop taking requests and drain, once a version it
  // wants is ready: a new version that fails to load leaves the previous one serving.
  std::vector<std::shared_ptr<Servable>> released;
  {
    absl::MutexLock lock(&mu_);
    Model& model = models_[name];
    bool wanted_ready = false;
    for (int64_t v : found->wanted) {
      auto it = model.versions.find(v);
      wanted_ready = wanted_ready || (it != model.versions.end() && it->second.servable);
    }
    for (auto& [v, version] : model.versions) {
      if (std::find(found->wanted.begin(), found->wanted.end(), v) != found->wanted.end()) continue;
      if (version.servable && wanted_ready) {
        released.push_back(TakeOutOfService(&version, "unloading: the version policy no longer serves it"));
        LogInfo("model %s version %d: no longer served by its version policy; draining", name, v);
      } else if (version.servable) {
        version.snapshot.reason = "kept serving: no version the policy serves is ready";
      } else if (version.snapshot.state != ModelState::kUnloading) {
        version.snapshot.state = ModelState::kUnavailable;
        version.snapshot.reason = found->found.count(v) ? "not served by the version policy" : "removed";
      }
    }
    if (ReadyVersions(model).empty()) {
      model.state = ModelState::kFailed;
      if (model.reason.empty() && !first_error.ok()) model.reason = std::string(first_error.message());
    }
  }
  Changed();
  released.clear();
  if (options_.metrics) {
    std::optional<model::ModelFamily> family;  // only a ready model gets its family's series
    int64_t newest = 1;
    {
      absl::MutexLock lock(&mu_);
      const std::vector<int64_t> ready = ReadyVersions(models_[name]);
      if (!ready.empty()) {
        family = models_[name].family;
        newest = ready.front();
      }
    }
    options_.metrics->RegisterModel(name, family.has_value(), family, newest);
  }
  Changed();
  return first_error;
}

absl::StatusOr<std::shared_ptr<Servable>> ModelRepository::LoadVersion(const std::string& name,
                                                                       const VersionDirectory& version_dir,
                                                                       ModelSnapshot* snapshot) {
  const std::string& dir_path = version_dir.path;
  auto dir = model::ReadModelDirectory(dir_path);
  if (!dir.ok()) return dir.status();
  snapshot->family = dir->family;
  // A misspelled key would otherwise be ignored and the model served with a default.
  model::KeySchema schema = model::FamilyKeys(dir->family);
  model::Merge(model::ServingKeys(), &schema);
  ELLIPTICAL_RETURN_IF_ERROR(model::CheckKnownKeys(dir->config, schema, dir_path + "/config.json"));
  auto serving = ParseServingConfig(dir->config, options_.serving);
  if (!serving.ok()) {
    return absl::Status(serving.status().code(),
                        absl::StrCat(dir_path, "/config.json: ", serving.status().message()));
  }
  snapshot->input_form = serving->input_form;

  // What this version will hold: its files (the weights, read once into memory; a bf16 model
  // holds less) and a language model's KV cache. It loads beside what serves now, so a reload
  // needs room for both copies at its peak.
  int64_t bytes = version_dir.bytes;
  if (dir->family == model::ModelFamily::kLanguageModel) bytes += serving->generation.max_cache_bytes;
  {
    absl::MutexLock lock(&mu_);
    if (options_.memory_budget_bytes > 0 && memory_bytes_ + bytes > options_.memory_budget_bytes) {
      return absl::ResourceExhaustedError(absl::StrFormat(
          "needs about %.1f MiB beside the %.1f MiB that loaded models (and those finishing their requests) hold; "
          "--model_memory_budget_mb is %.1f (a reload holds both copies until the old one drains)",
          MiB(bytes), MiB(memory_bytes_), MiB(options_.memory_budget_bytes)));
    }
    memory_bytes_ += bytes;  // reserved while loading
  }
  ServableContext context;
  context.name = name;
  context.dir = *std::move(dir);
  context.serving = *std::move(serving);
  context.load = options_.load;
  context.metrics = options_.metrics;
  context.attention_stats_sample_rate = options_.attention_stats_sample_rate;
  context.warmup = options_.warmup;
  const absl::Time start = absl::Now();
  WarmupReport warmup;
  auto servable = LoadServable(context, &warmup);
  if (!servable.ok()) {
    absl::MutexLock lock(&mu_);
    memory_bytes_ -= bytes;
    return servable.status();
  }
  snapshot->description = (*servable)->description();
  snapshot->report.warmup = warmup.duration;
  snapshot->report.warmup_runs = warmup.runs;
  snapshot->report.load = absl::Now() - start - warmup.duration;
  snapshot->report.memory_bytes = bytes;
  return servable;
}

std::shared_ptr<Servable> ModelRepository::Lease(const std::string& name, int64_t version, uint64_t generation,
                                                 std::shared_ptr<Servable> servable, int64_t bytes) {
  return retirement_->Lease(std::move(servable), [alive = alive_, name, version, generation, bytes] {
    absl::MutexLock lock(&alive->mu);
    if (alive->repository) alive->repository->Drained(name, version, generation, bytes);
  });
}

void ModelRepository::Drained(const std::string& name, int64_t version, uint64_t generation, int64_t bytes) {
  {
    absl::MutexLock lock(&mu_);
    memory_bytes_ -= bytes;
    auto model = models_.find(name);
    if (model != models_.end()) {
      auto v = model->second.versions.find(version);
      if (v != model->second.versions.end() && v->second.generation == generation &&
          v->second.snapshot.state == ModelState::kUnloading) {
        v->second.snapshot.state = ModelState::kUnavailable;
        v->second.snapshot.reason = "unloaded";
        v->second.snapshot.description.reset();
      }
    }
  }
  LogInfo("model %s version %d drained and freed", name, version);
  Changed();
}

void ModelRepository::Poll() {
  auto names = ListModelDirectories(options_.root);
  if (!names.ok()) {
    LogError("polling the model repository: %s", names.status().message());
    return;
  }
  std::set<std::string> all(names->begin(), names->end());
  {
    absl::MutexLock lock(&mu_);
    if (shut_down_) return;
    for (const auto& [name, model] : models_) {
      if (model.wanted) all.insert(name);
    }
  }
  for (const std::string& name : all) {
    if (stop_polling_.HasBeenNotified()) return;
    absl::MutexLock ops(&ops_mu_);
    // A failure is logged and counted inside (Record); the poll goes on to the next model.
    Apply(name, /*force=*/false, "load").IgnoreError();
  }
}

void ModelRepository::PollLoop() {
  while (!stop_polling_.WaitForNotificationWithTimeout(options_.poll_interval)) Poll();
}

std::shared_ptr<Servable> ModelRepository::TakeOutOfService(Version* version, const char* reason) {
  version->snapshot.state = ModelState::kUnloading;
  version->snapshot.reason = reason;
  return std::move(version->servable);
}


void ModelRepository::Shutdown() {
  if (!stop_polling_.HasBeenNotified()) stop_polling_.Notify();
  if (poller_.joinable()) poller_.join();
  std::vector<std::shared_ptr<Servable>> servables;
  {
    absl::MutexLock lock(&mu_);
    shut_down_ = true;
    for (auto& [name, model] : models_) {
      for (auto& [v, version] : model.versions) {
        if (version.servable) servables.push_back(version.servable);
      }
    }
  }
  // Queued and running work completes; new work is refused (the drain of main.cc has already
  // finished the accepted calls).
  for (const auto& s : servables) s->Shutdown();
}

}  // namespace elliptical::server
