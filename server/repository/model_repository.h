// The model repository: a directory whose subdirectories are models (each with a config.json),
// loaded at start-up. A model that fails to load is kept, marked FAILED with its reason, and
// the others serve; callers get a shared handle, so a model stays alive while a request uses it.
//
// Thread-safety: all methods may be called concurrently.
#pragma once

#include <map>
#include <optional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/strings/str_cat.h"
#include "model/api/image_classifier.h"
#include "model/config/model_dir.h"
#include "server/metrics/server_metrics.h"
#include "server/repository/serving_config.h"
#include "server/serving/servable.h"

namespace elliptical::server {

enum class ModelState { kLoading, kReady, kFailed };

struct ModelSnapshot {
  std::string name;
  std::string directory;
  std::optional<model::ModelFamily> family;  // unknown when config.json itself is unreadable
  ModelState state = ModelState::kLoading;
  std::string reason;  // why it failed
  std::optional<model::ModelDescription> description;  // once ready
  InputForm input_form = InputForm::kImage;  // config.json's "input_form", once ready
};

class ModelRepository {
 public:
  struct Options {
    std::string root;              // directory of model directories
    model::LoadOptions load;       // device / dtype overrides for every model
    ServingOverrides serving;      // batching / generation overrides for every model
    ServerMetrics* metrics = nullptr;          // batches, generations and attention statistics
    double attention_stats_sample_rate = 0;    // fraction of batches sampled for metrics
  };

  // Lists the model directories (sorted by name) and marks each LOADING. Fails only when the
  // root itself cannot be read.
  static absl::StatusOr<std::unique_ptr<ModelRepository>> Create(Options options);

  // Loads every model, one after the other; logs each outcome.
  void LoadAll();

  std::vector<ModelSnapshot> List() const;
  // NOT_FOUND for an unknown name.
  absl::StatusOr<ModelSnapshot> Describe(const std::string& name) const;
  // Whether a model of that name is in the repository (cheap: for every call's metric labels).
  bool Contains(const std::string& name) const;

  // The servable of a ready model, as the family's type T (ClassifierServable, ...: each names
  // its T::kFamily). NOT_FOUND for an unknown name, UNAVAILABLE while loading or after a failed
  // load (with the reason), FAILED_PRECONDITION when the model is of another family.
  template <typename T>
  absl::StatusOr<std::shared_ptr<T>> Get(const std::string& name) const {
    absl::MutexLock lock(&mu_);
    auto entry = Ready(name, T::kFamily);
    if (!entry.ok()) return entry.status();
    std::shared_ptr<T> typed = std::dynamic_pointer_cast<T>((*entry)->servable);
    if (!typed) return absl::InternalError(absl::StrCat("model \"", name, "\" has an unexpected servable"));
    return typed;
  }

  // Drains every model: queued and running work completes, new work is refused.
  void Shutdown();

  // The instantaneous load of every ready model, for the metrics gauges.
  struct ModelLoad {
    std::string name;
    ServableLoad load;
  };
  std::vector<ModelLoad> Loads() const;

  // True once every model has been tried (loaded or failed).
  bool AllLoaded() const;

 private:
  struct Entry {
    ModelSnapshot snapshot;
    std::shared_ptr<Servable> servable;  // once ready
  };

  explicit ModelRepository(Options options) : options_(std::move(options)) {}
  absl::Status LoadOne(Entry* staged);
  // The ready entry named `name`, or why there is none; `family` is the one the caller needs.
  absl::StatusOr<const Entry*> Ready(const std::string& name, model::ModelFamily family) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Options options_;
  mutable absl::Mutex mu_;
  std::map<std::string, Entry> models_ ABSL_GUARDED_BY(mu_);
};

absl::string_view ModelStateName(ModelState state);

}  // namespace elliptical::server
