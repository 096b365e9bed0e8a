// The model repository: a directory whose subdirectories are models, each with one or more
// versions (model_versions.h). What is loaded, and when, follows the control mode:
//   none      every model at start-up, never changed while serving;
//   explicit  what --load_model names at start-up ("*": all), then only LoadModel/UnloadModel;
//   poll      every model at start-up, then the directory is read again every poll interval and
//             what changed is loaded, reloaded or unloaded.
//
// A load or reload never interrupts serving: the new version loads and warms up beside the old
// one, takes the requests once it is ready, and the old one finishes the work it accepted
// (streams included) before it is freed (servable_retirement.h). A reload that fails leaves
// the old version serving, with the failure in its snapshot's `reason`. A model that fails
// its first load is kept, FAILED with its reason, and the others serve. Callers get a shared
// handle, so a version stays alive while a request uses it.
//
// The lifecycle is in model_repository.cc, the read side (index, snapshots, the servable a
// request gets, readiness) in model_repository_queries.cc.
//
// Thread-safety: all methods may be called concurrently; loads and unloads run one at a time.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "model/api/image_classifier.h"
#include "model/config/model_dir.h"
#include "server/metrics/server_metrics.h"
#include "server/repository/model_versions.h"
#include "server/repository/serving_config.h"
#include "server/repository/servable_retirement.h"
#include "server/serving/servable.h"

namespace elliptical::server {

// kUnavailable: in the repository but not loaded (explicit mode before a load, after an
// unload, or a version the policy no longer serves). kUnloading: taking no new requests,
// finishing the ones it accepted.
enum class ModelState { kLoading, kReady, kFailed, kUnavailable, kUnloading };

enum class ControlMode { kNone, kExplicit, kPoll };
// "none", "explicit", "poll"; INVALID_ARGUMENT naming --model_control_mode otherwise.
absl::StatusOr<ControlMode> ParseControlMode(absl::string_view value);
absl::string_view ControlModeName(ControlMode mode);

// What loading one version cost.
struct LoadReport {
  absl::Duration load;    // reading the weights and building the model
  absl::Duration warmup;  // the warm-up forwards before READY
  int warmup_runs = 0;
  int64_t memory_bytes = 0;  // what the repository counts against --model_memory_budget_mb
};

// One version of one model.
struct ModelSnapshot {
  std::string name;
  int64_t version = 0;  // 0: no version (nothing on disk, or the model's own config is bad)
  std::string directory;
  std::optional<model::ModelFamily> family;  // unknown when config.json itself is unreadable
  ModelState state = ModelState::kLoading;
  // Why it failed or is unavailable; for a READY version whose reload failed, why the reload
  // failed (it keeps serving the previous load).
  std::string reason;
  std::optional<model::ModelDescription> description;  // once ready
  InputForm input_form = InputForm::kImage;  // config.json's "input_form", once ready
  LoadReport report;                         // once ready
  std::vector<int64_t> ready_versions;       // List() and Describe(): every ready version, newest first
};

class ModelRepository {
 public:
  struct Options {
    std::string root;              // directory of model directories
    model::LoadOptions load;       // device / dtype overrides for every model
    ServingOverrides serving;      // batching / generation overrides for every model
    ServerMetrics* metrics = nullptr;          // batches, generations, attention statistics, loads
    double attention_stats_sample_rate = 0;    // fraction of batches sampled for metrics
    ControlMode control_mode = ControlMode::kNone;
    // kExplicit: the models LoadAll loads ("*": every one).
    std::vector<std::string> startup_models;
    absl::Duration poll_interval = absl::Seconds(15);  // kPoll
    // Most bytes the loaded versions (and those still draining) may take together, as
    // estimated from their files and caches; 0: no limit. A load or reload beyond it is refused
    // with RESOURCE_EXHAUSTED, and what is serving keeps serving.
    int64_t memory_budget_bytes = 0;
    bool warmup = true;             // run each version's warm-up before it turns READY
    bool strict_readiness = false;  // ServerReady(): every model ready, not just one
    // Runs after every change of state (a version ready, failed, unloaded, drained), outside
    // every lock: health statuses follow it (main.cc).
    std::function<void()> on_change;
  };

  // Lists the model directories and marks each LOADING (UNAVAILABLE in explicit mode unless
  // named). Fails only when the root itself cannot be read.
  static absl::StatusOr<std::unique_ptr<ModelRepository>> Create(Options options);
  ~ModelRepository();

  // Start-up: loads what the control mode loads, one model after the other, and logs each
  // outcome; in poll mode, then starts polling.
  void LoadAll();

  // The repository API (explicit mode; FAILED_PRECONDITION naming --model_control_mode in the
  // others). LoadModel loads the model's versions its policy serves, or reloads them when they
  // are loaded (new versions load, dropped ones unload); NOT_FOUND when `name` is no model
  // directory, RESOURCE_EXHAUSTED beyond the memory budget, the load's own error otherwise
  // (what loaded before keeps serving). UnloadModel stops every version taking requests; their
  // accepted work finishes first. NOT_FOUND for a name that is neither loaded nor on disk.
  absl::Status LoadModel(const std::string& name);
  absl::Status UnloadModel(const std::string& name);
  // Reads the directory again and applies what changed (what poll mode does on its period).
  void Poll();

  // Every version of every model in the repository and every one loaded, by name then version
  // (newest first); a model with no version gets one entry of version 0. `ready_only`: READY
  // versions only.
  std::vector<ModelSnapshot> Index(bool ready_only = false) const;

  // One entry per model: its newest ready version, else its newest known one.
  std::vector<ModelSnapshot> List() const;
  // The version `version` names ("": the newest ready one, else the newest known). NOT_FOUND
  // for an unknown name or version, INVALID_ARGUMENT for a malformed version.
  absl::StatusOr<ModelSnapshot> Describe(const std::string& name, absl::string_view version = "") const;
  // Whether a model of that name is in the repository (cheap: for every call's metric labels).
  bool Contains(const std::string& name) const;

  // The servable of a ready version (""; the newest ready one), as the family's type T
  // (ClassifierServable, ...: each names its T::kFamily). NOT_FOUND for an unknown name or
  // version, UNAVAILABLE while loading, after a failed load (with the reason) or an unload,
  // FAILED_PRECONDITION when the model is of another family. The handle is a lease: the version
  // is not freed while it is held.
  template <typename T>
  absl::StatusOr<std::shared_ptr<T>> Get(const std::string& name, absl::string_view version = "",
                                         int64_t* served_version = nullptr) const {
    auto servable = GetServable(name, version, T::kFamily, served_version);
    if (!servable.ok()) return servable.status();
    std::shared_ptr<T> typed = std::dynamic_pointer_cast<T>(*std::move(servable));
    if (!typed) return absl::InternalError(absl::StrCat("model \"", name, "\" has an unexpected servable"));
    return typed;
  }

  // Readiness as health reports it: start-up loading is done and at least one model has a
  // ready version (with strict_readiness: every model in the repository that is meant to be
  // loaded has one).
  bool ServerReady() const;
  // Whether `name` has a ready version (health's per-model status).
  bool ModelReady(const std::string& name) const;

  // Drains every model: queued and running work completes, new work is refused.
  void Shutdown();

  // The instantaneous load of every model (summed over its serving versions; zero with none),
  // for the metrics gauges.
  struct ModelLoad {
    std::string name;
    ServableLoad load;
  };
  std::vector<ModelLoad> Loads() const;

  ControlMode control_mode() const { return options_.control_mode; }

 private:
  struct Version {
    ModelSnapshot snapshot;
    std::shared_ptr<Servable> servable;  // a lease; set while READY
    std::string fingerprint;             // of the directory it was loaded from
    uint64_t generation = 0;             // which load this is (a drain's callback checks it)
  };
  struct Model {
    std::map<int64_t, Version, std::greater<int64_t>> versions;
    bool wanted = false;     // meant to be loaded (counts for strict readiness)
    // With no version: LOADING before its first load, FAILED when the model as a whole cannot
    // load (no version, a bad policy), UNAVAILABLE when not loaded.
    ModelState state = ModelState::kUnavailable;
    std::string reason;
    std::string directory;
    std::optional<model::ModelFamily> family;
  };

  explicit ModelRepository(Options options);
  absl::StatusOr<std::shared_ptr<Servable>> GetServable(const std::string& name, absl::string_view version,
                                                       model::ModelFamily family, int64_t* served_version) const;
  // Brings `name` to what its directory and policy say (`force`: reload versions that did not
  // change too). Caller holds ops_mu_.
  absl::Status Apply(const std::string& name, bool force, const char* action) ABSL_EXCLUSIVE_LOCKS_REQUIRED(ops_mu_);
  absl::Status Unload(const std::string& name, const char* action) ABSL_EXCLUSIVE_LOCKS_REQUIRED(ops_mu_);
  // Loads one version beside whatever serves it now.
  absl::StatusOr<std::shared_ptr<Servable>> LoadVersion(const std::string& name, const VersionDirectory& dir,
                                                        ModelSnapshot* snapshot);
  // The version with no version directory that stands for a model in Index and List.
  static ModelSnapshot Placeholder(const std::string& name, const Model& model);
  // What a request's model name and version string (empty or "0": none named) point at.
  struct Found {
    const Model* model = nullptr;
    int64_t number = 0;               // 0: no version named
    const Version* version = nullptr;  // the named version; null when none is named
  };
  // INVALID_ARGUMENT for a malformed version, NOT_FOUND for an unknown model or version.
  absl::StatusOr<Found> Find(const std::string& name, absl::string_view version) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  static std::vector<int64_t> ReadyVersions(const Model& model);
  // The snapshot that stands for a model (List, Describe without a version): its newest ready
  // version, else its newest known one, else Placeholder; with ready_versions filled.
  static ModelSnapshot Representative(const std::string& name, const Model& model);
  static absl::Status NoSuchVersion(const std::string& name, int64_t version, const Model& model);
  // Marks a serving version UNLOADING with `reason` and hands over the repository's lease.
  static std::shared_ptr<Servable> TakeOutOfService(Version* version, const char* reason);
  std::shared_ptr<Servable> Lease(const std::string& name, int64_t version, uint64_t generation,
                                  std::shared_ptr<Servable> servable, int64_t bytes);
  void Drained(const std::string& name, int64_t version, uint64_t generation, int64_t bytes);
  void Record(const std::string& name, int64_t version, const char* action, const char* outcome,
              absl::Duration duration) const;
  absl::Status CheckControl(const char* verb) const;
  void Changed() const;
  void PollLoop();

  const Options options_;
  std::shared_ptr<ServableRetirement> retirement_;
  absl::Mutex ops_mu_;  // one load or unload at a time
  mutable absl::Mutex mu_;
  std::map<std::string, Model> models_ ABSL_GUARDED_BY(mu_);
  bool started_ ABSL_GUARDED_BY(mu_) = false;  // LoadAll has run
  bool shut_down_ ABSL_GUARDED_BY(mu_) = false;
  int64_t memory_bytes_ ABSL_GUARDED_BY(mu_) = 0;  // loaded and draining versions, estimated
  uint64_t next_generation_ ABSL_GUARDED_BY(mu_) = 1;
  // Lets a lease released after this repository is gone find it gone (servable_retirement.h).
  struct Alive {
    absl::Mutex mu;
    ModelRepository* repository ABSL_GUARDED_BY(mu) = nullptr;
  };
  std::shared_ptr<Alive> alive_;
  absl::Notification stop_polling_;
  std::thread poller_;
};

absl::string_view ModelStateName(ModelState state);

}  // namespace elliptical::server
