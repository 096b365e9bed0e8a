// The server's Prometheus metrics (prometheus-cpp, pull): one registry, exposed on its own port
// at /metrics. Names follow Prometheus conventions: prefix "elliptical_", base units (_seconds,
// _bytes), _total for counters; labels model, rpc, protocol, code, reason, layer, all bounded (models come
// from the repository, layers from the model, protocols, codes and reasons from fixed sets).
//
// Series are created once, when a model is registered or a label set is first seen, and the
// hot path keeps references.
//
// Thread-safety: every method may be called from any thread.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <memory>
#include <string>
#include <vector>

#include <prometheus/counter.h>
#include <prometheus/exposer.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "model/api/attention_stats.h"
#include "model/api/model_description.h"
#include "server/metrics/standard_metrics.h"

namespace elliptical::server {

class ServerMetrics {
 public:
  // Checks a scrape's HTTP basic-auth user and password (server/security/server_security.h).
  using BasicAuth = std::function<bool(const std::string& user, const std::string& password)>;

  // Exposes the registry on `address` ("0.0.0.0:8501"; port 0 picks a free one). With `auth`,
  // a scrape without accepted credentials gets 401.
  static absl::StatusOr<std::unique_ptr<ServerMetrics>> Start(const std::string& address,
                                                              const std::string& build_version,
                                                              BasicAuth auth = nullptr);
  // A registry without an HTTP endpoint (for tests of what is recorded).
  static std::unique_ptr<ServerMetrics> Unexposed(const std::string& build_version);

  int port() const { return port_; }
  const std::shared_ptr<prometheus::Registry>& registry() const { return registry_; }

  // What samples the gauges no event updates (LoadPoller::Sample): run before every scrape, on
  // either port, so that the load gauges routers read are current at the scrape, not up to the
  // poller's period old. Null clears it; clearing waits for a refresh in progress to finish.
  void SetRefresh(std::function<void()> refresh);
  // The text exposition of the registry, refreshed first: what /metrics answers on any port.
  std::string Exposition();

  // Every model gets its series when it is loaded (ready or not); with its family, also the
  // standard names routers read for that family (standard_metrics.h).
  // `version`: the newest version serving (Triton's version label).
  void RegisterModel(const std::string& model, bool ready,
                     std::optional<model::ModelFamily> family = std::nullopt, int64_t version = 1);
  // elliptical_model_precision_info{model, device, dtype, source} = 1: the precision a model
  // computes in and why (source: "configured", or what dtype "auto" found on this machine).
  void RecordPrecision(const std::string& model, const std::string& device, const std::string& dtype,
                       const std::string& source);

  // One finished RPC: its gRPC code name (OK, INVALID_ARGUMENT, ...) and end-to-end time.
  void RecordRequest(const std::string& model, const std::string& rpc, const std::string& protocol,
                     const std::string& code,
                     absl::Duration duration);
  // The same, from the call's status code: also counts Triton's success and failure counters.
  void RecordRequest(const std::string& model, const std::string& rpc, const std::string& protocol,
                     absl::StatusCode code, absl::Duration duration);
  // Why a request was turned away or abandoned: queue_full, deadline, cancelled, unavailable.
  void RecordRejection(const std::string& model, const std::string& reason);
  void RecordQueueWait(const std::string& model, absl::Duration wait);
  // A served vision call's timing: the queue wait above, plus preprocessing and the time of the
  // batches it ran in (Triton's cumulative queue, compute-input and compute-infer durations).
  void RecordServeTiming(const std::string& model, absl::Duration queue, absl::Duration preprocess,
                         absl::Duration compute);
  // One batch computed by `instance` of the model.
  void RecordBatch(const std::string& model, int instance, int batch_size, absl::Duration compute);
  void SetQueueDepth(const std::string& model, int items);
  void AddInFlight(const std::string& model, const std::string& rpc, const std::string& protocol,
                   int delta);

  // Generation.
  // Tokens count for every generation, cancelled or failed ones too (the work was done); the
  // latency histograms only for those that `completed`.
  void RecordGeneration(const std::string& model, int prompt_tokens, int generated_tokens,
                        absl::Duration time_to_first_token, absl::Duration total, bool completed);
  // The KV cache: bytes the live sequences' slots hold, bytes allocated at load, slots in use.
  // `slots` slots of `slot_tokens` tokens each: the cache's shape (vllm:cache_config_info).
  void SetGenerationLoad(const std::string& model, int running, int waiting, int64_t cache_bytes,
                         int64_t cache_allocated_bytes, int slots_used, int slots = 0, int slot_tokens = 0);

  // Attention-scale statistics of one input, per layer.
  void RecordAttentionStats(const std::string& model, const std::vector<model::LayerStats>& layers);

  // The HTTP port's connections (server/transport/http/http_server.h): open now, refused beyond
  // --http_max_connections, and requests its transport turned away, by reason (header_timeout,
  // body_timeout, framing, body_too_large, header_too_large, body_budget).
  void AddHttpConnections(int delta) { http_connections_.Increment(delta); }
  void RecordHttpConnectionRefused() { http_refused_.Increment(); }
  void RecordHttpRejection(const std::string& reason) { http_rejections_.Add({{"reason", reason}}).Increment(); }

  // Model lifecycle (server/repository/model_repository.h). One load, reload or unload of a
  // version: outcome ok, failed, or refused (beyond --model_memory_budget_mb); version 0 when the
  // model's directory failed before any version was read.
  void RecordModelLifecycle(const std::string& model, int64_t version, const std::string& action,
                            const std::string& outcome, absl::Duration duration);
  // The last warm-up's time of the model's newest load.
  void RecordWarmup(const std::string& model, absl::Duration duration);
  // elliptical_model_ready: whether any version of the model serves now.
  void SetModelReady(const std::string& model, bool ready);

  // Process and device.
  void SetProcess(int64_t resident_bytes, int64_t device_bytes);

 private:
  explicit ServerMetrics(const std::string& build_version);

  struct PerModel {
    prometheus::Histogram* queue_wait = nullptr;
    prometheus::Histogram* compute = nullptr;
    prometheus::Histogram* batch_size = nullptr;
    prometheus::Gauge* queue_depth = nullptr;
    prometheus::Gauge* ready = nullptr;
    prometheus::Histogram* ttft = nullptr;
    prometheus::Histogram* time_per_token = nullptr;
    prometheus::Histogram* generation = nullptr;
    prometheus::Counter* prompt_tokens = nullptr;
    prometheus::Counter* generated_tokens = nullptr;
    prometheus::Gauge* running = nullptr;
    prometheus::Gauge* waiting = nullptr;
    prometheus::Gauge* cache_bytes = nullptr;
    prometheus::Gauge* cache_budget = nullptr;
    prometheus::Gauge* cache_slots_used = nullptr;
  };
  struct PerInstance {
    prometheus::Counter* batches = nullptr;
    prometheus::Counter* busy_seconds = nullptr;
  };
  struct PerLayer {
    prometheus::Histogram* metric = nullptr;
    prometheus::Histogram* effective_dimension = nullptr;
    prometheus::Histogram* cosine = nullptr;
  };

  PerModel& Model(const std::string& model) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Refresh();

  std::shared_ptr<prometheus::Registry> registry_;
  // What the exposer collects: the registry, refreshed first.
  std::shared_ptr<prometheus::Collectable> refreshed_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  int port_ = 0;

  prometheus::Family<prometheus::Counter>& requests_;
  prometheus::Family<prometheus::Histogram>& request_duration_;
  prometheus::Family<prometheus::Counter>& rejections_;
  prometheus::Family<prometheus::Gauge>& in_flight_;
  prometheus::Family<prometheus::Histogram>& queue_wait_;
  prometheus::Family<prometheus::Histogram>& compute_;
  prometheus::Family<prometheus::Histogram>& batch_size_;
  prometheus::Family<prometheus::Gauge>& queue_depth_;
  prometheus::Family<prometheus::Gauge>& model_ready_;
  prometheus::Family<prometheus::Gauge>& model_precision_;
  prometheus::Family<prometheus::Histogram>& ttft_;
  prometheus::Family<prometheus::Histogram>& time_per_token_;
  prometheus::Family<prometheus::Histogram>& generation_;
  prometheus::Family<prometheus::Counter>& prompt_tokens_;
  prometheus::Family<prometheus::Counter>& generated_tokens_;
  prometheus::Family<prometheus::Gauge>& running_;
  prometheus::Family<prometheus::Gauge>& waiting_;
  prometheus::Family<prometheus::Gauge>& cache_bytes_;
  prometheus::Family<prometheus::Gauge>& cache_budget_;
  prometheus::Family<prometheus::Gauge>& cache_slots_used_;
  prometheus::Family<prometheus::Counter>& instance_batches_;
  prometheus::Family<prometheus::Counter>& instance_busy_;
  prometheus::Family<prometheus::Histogram>& attention_metric_;
  prometheus::Family<prometheus::Histogram>& effective_dimension_;
  prometheus::Family<prometheus::Histogram>& token_cosine_;
  prometheus::Gauge& resident_bytes_;
  prometheus::Gauge& device_bytes_;
  prometheus::Gauge& http_connections_;
  prometheus::Counter& http_refused_;
  prometheus::Family<prometheus::Counter>& http_rejections_;
  prometheus::Family<prometheus::Counter>& model_loads_;
  prometheus::Family<prometheus::Histogram>& model_load_duration_;
  prometheus::Family<prometheus::Gauge>& warmup_duration_;

  std::unique_ptr<StandardMetrics> standard_;

  absl::Mutex refresh_mu_;
  std::function<void()> refresh_ ABSL_GUARDED_BY(refresh_mu_);

  absl::Mutex mu_;
  std::map<std::string, PerModel> models_ ABSL_GUARDED_BY(mu_);
  std::map<std::pair<std::string, int>, PerLayer> layers_ ABSL_GUARDED_BY(mu_);
  std::map<std::pair<std::string, int>, PerInstance> instances_ ABSL_GUARDED_BY(mu_);
};

}  // namespace elliptical::server
