#include "server/metrics/server_metrics.h"

#include <CivetServer.h>
#include <prometheus/counter.h>
#include <prometheus/text_serializer.h>

#include <mutex>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "model/api/runtime.h"

namespace elliptical::server {
namespace {

using prometheus::BuildCounter;
using prometheus::BuildGauge;
using prometheus::BuildHistogram;
using Buckets = prometheus::Histogram::BucketBoundaries;

// 100 us to 60 s, about three buckets a decade: resolves sub-millisecond batches and
// minute-long generations alike.
Buckets LatencyBuckets() {
  return {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
          0.25,   0.5,     1,      2.5,   5,      10,    30,   60};
}
Buckets BatchBuckets() { return {1, 2, 4, 8, 16, 32, 64, 128, 256}; }
// Bins of model::LayerStats::metric_histogram: (i/20, (i+1)/20].
Buckets MetricBuckets() {
  Buckets b;
  for (int i = 1; i <= model::kMetricBins; ++i) b.push_back(static_cast<double>(i) / model::kMetricBins);
  return b;
}
Buckets UnitBuckets() { return {0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1}; }
// Cosine similarity lies in [-1, 1]; collapse shows as values near 1.
Buckets CosineBuckets() { return {-0.5, 0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1}; }

double Seconds(absl::Duration d) { return absl::ToDoubleSeconds(d); }

// civetweb explains a failed start only through its log callback.
std::mutex civetweb_mu;
std::string civetweb_error;
int LogCivetweb(const mg_connection*, const char* message) {
  std::lock_guard<std::mutex> lock(civetweb_mu);
  civetweb_error = message;
  return 1;
}

// The registry as the exposer collects it: refreshed by its owner first.
class RefreshedRegistry : public prometheus::Collectable {
 public:
  RefreshedRegistry(std::shared_ptr<prometheus::Registry> registry, std::function<void()> refresh)
      : registry_(std::move(registry)), refresh_(std::move(refresh)) {}
  std::vector<prometheus::MetricFamily> Collect() const override {
    refresh_();
    return registry_->Collect();
  }

 private:
  const std::shared_ptr<prometheus::Registry> registry_;
  const std::function<void()> refresh_;
};

}  // namespace

ServerMetrics::ServerMetrics(const std::string& build_version)
    : registry_(std::make_shared<prometheus::Registry>()),
      requests_(BuildCounter().Name("elliptical_requests_total").Help("Finished calls by model, rpc (Classify, Segment, Generate, Score), protocol and canonical status code.").Register(*registry_)),
      request_duration_(BuildHistogram().Name("elliptical_request_duration_seconds").Help("End-to-end call time in the server, by model, rpc and protocol.").Register(*registry_)),
      rejections_(BuildCounter().Name("elliptical_rejections_total").Help("Requests turned away or abandoned, by reason: queue_full, deadline, cancelled, unavailable.").Register(*registry_)),
      in_flight_(BuildGauge().Name("elliptical_in_flight_requests").Help("Calls being served now, by model, rpc and protocol.").Register(*registry_)),
      queue_wait_(BuildHistogram().Name("elliptical_queue_duration_seconds").Help("Time a request waited in its model's queue before computing.").Register(*registry_)),
      compute_(BuildHistogram().Name("elliptical_batch_compute_duration_seconds").Help("Time one batch took on the device.").Register(*registry_)),
      batch_size_(BuildHistogram().Name("elliptical_batch_size").Help("Items (images) per batch.").Register(*registry_)),
      queue_depth_(BuildGauge().Name("elliptical_queue_items").Help("Items waiting in the model's batching queue.").Register(*registry_)),
      model_ready_(BuildGauge().Name("elliptical_model_ready").Help("1 when the model loaded and serves, 0 when it failed.").Register(*registry_)),
      model_precision_(BuildGauge().Name("elliptical_model_precision_info").Help("1 for the device and dtype a loaded model computes in; source says why (configured, or what dtype auto found: cpu_amx_bf16, cpu_no_amx, cuda, ...).").Register(*registry_)),
      ttft_(BuildHistogram().Name("elliptical_time_to_first_token_seconds").Help("Generate: arrival to first token.").Register(*registry_)),
      time_per_token_(BuildHistogram().Name("elliptical_time_per_output_token_seconds").Help("Generate: mean time per token after the first.").Register(*registry_)),
      generation_(BuildHistogram().Name("elliptical_generation_duration_seconds").Help("Generate: arrival to last token.").Register(*registry_)),
      prompt_tokens_(BuildCounter().Name("elliptical_prompt_tokens_total").Help("Prompt tokens of finished generations.").Register(*registry_)),
      generated_tokens_(BuildCounter().Name("elliptical_generated_tokens_total").Help("Tokens generated.").Register(*registry_)),
      running_(BuildGauge().Name("elliptical_running_sequences").Help("Sequences in the running decode batch.").Register(*registry_)),
      waiting_(BuildGauge().Name("elliptical_waiting_sequences").Help("Sequences waiting for admission.").Register(*registry_)),
      cache_bytes_(BuildGauge().Name("elliptical_kv_cache_reserved_bytes").Help("KV cache held by the slots of running sequences.").Register(*registry_)),
      cache_budget_(BuildGauge().Name("elliptical_kv_cache_budget_bytes").Help("KV cache allocated when the model loaded.").Register(*registry_)),
      cache_slots_used_(BuildGauge().Name("elliptical_kv_cache_slots_used").Help("KV cache slots held by running sequences.").Register(*registry_)),
      instance_batches_(BuildCounter().Name("elliptical_instance_batches_total").Help("Batches computed, by model and instance.").Register(*registry_)),
      instance_busy_(BuildCounter().Name("elliptical_instance_busy_seconds_total").Help("Time spent computing batches, by model and instance.").Register(*registry_)),
      attention_metric_(BuildHistogram().Name("elliptical_attention_metric").Help("Entries of the elliptical metric m (max-scaled, in (0, 1]) in sampled inputs, by model and layer.").Register(*registry_)),
      effective_dimension_(BuildHistogram().Name("elliptical_attention_effective_dimension").Help("(sum m)^2 / (d sum m^2) per head in sampled inputs: 1 is isotropic.").Register(*registry_)),
      token_cosine_(BuildHistogram().Name("elliptical_token_cosine_similarity").Help("Mean pairwise cosine similarity of a layer's output tokens in sampled inputs: near 1 is representation collapse.").Register(*registry_)),
      resident_bytes_(BuildGauge().Name("elliptical_process_resident_memory_bytes").Help("Resident memory of the server process.").Register(*registry_).Add({})),
      device_bytes_(BuildGauge().Name("elliptical_device_memory_allocated_bytes").Help("Device memory held by tensors (0 on the CPU).").Register(*registry_).Add({})),
      http_connections_(BuildGauge().Name("elliptical_http_connections_open").Help("Connections open on the HTTP port.").Register(*registry_).Add({})),
      http_refused_(BuildCounter().Name("elliptical_http_connections_refused_total").Help("HTTP connections refused at once because --http_max_connections were open.").Register(*registry_).Add({})),
      http_rejections_(BuildCounter().Name("elliptical_http_requests_rejected_total").Help("HTTP requests the transport turned away before any route, by reason: header_timeout, body_timeout, framing, body_too_large, header_too_large, body_budget.").Register(*registry_)),
      model_loads_(BuildCounter().Name("elliptical_model_lifecycle_total").Help("Loads, reloads and unloads of a model version, by model, version, action (load, reload, unload) and outcome (ok, failed, refused).").Register(*registry_)),
      model_load_duration_(BuildHistogram().Name("elliptical_model_lifecycle_duration_seconds").Help("Time a load, reload or unload took until the version served (or stopped taking requests), warm-up included, by model, action and outcome.").Register(*registry_)),
      warmup_duration_(BuildGauge().Name("elliptical_model_warmup_seconds").Help("Warm-up time of the model's newest load, before it turned ready.").Register(*registry_)) {
  BuildGauge()
      .Name("elliptical_build_info")
      .Help("Always 1; the labels say what is running.")
      .Register(*registry_)
      .Add({{"version", build_version}, {"torch", model::TorchVersion()}})
      .Set(1);
  standard_ = std::make_unique<StandardMetrics>(*registry_, LatencyBuckets());
  refreshed_ = std::make_shared<RefreshedRegistry>(registry_, [this] { Refresh(); });
}

void ServerMetrics::SetRefresh(std::function<void()> refresh) {
  absl::MutexLock lock(&refresh_mu_);
  refresh_ = std::move(refresh);
}

void ServerMetrics::Refresh() {
  absl::MutexLock lock(&refresh_mu_);
  if (refresh_) refresh_();
}

std::string ServerMetrics::Exposition() {
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, refreshed_->Collect());
  return out.str();
}

std::unique_ptr<ServerMetrics> ServerMetrics::Unexposed(const std::string& build_version) {
  return std::unique_ptr<ServerMetrics>(new ServerMetrics(build_version));
}

absl::StatusOr<std::unique_ptr<ServerMetrics>> ServerMetrics::Start(const std::string& address,
                                                                    const std::string& build_version,
                                                                    BasicAuth auth) {
  std::unique_ptr<ServerMetrics> m(new ServerMetrics(build_version));
  static CivetCallbacks callbacks;
  callbacks.log_message = LogCivetweb;
  try {
    m->exposer_ = std::make_unique<prometheus::Exposer>(address, /*num_threads=*/2, &callbacks);
  } catch (const std::exception& e) {
    std::lock_guard<std::mutex> lock(civetweb_mu);
    return absl::UnavailableError(
        absl::StrCat("cannot serve metrics on ", address, ": ", e.what(), " ", civetweb_error));
  }
  // Before the collectable, so that no scrape is ever answered without the check.
  if (auth) m->exposer_->RegisterAuth(std::move(auth), "elliptical-server metrics");
  m->exposer_->RegisterCollectable(m->refreshed_);
  const std::vector<int> ports = m->exposer_->GetListeningPorts();
  m->port_ = ports.empty() ? 0 : ports.front();
  return m;
}

ServerMetrics::PerModel& ServerMetrics::Model(const std::string& model) {
  auto it = models_.find(model);
  if (it != models_.end()) return it->second;
  const prometheus::Labels labels = {{"model", model}};
  PerModel& m = models_[model];
  m.queue_wait = &queue_wait_.Add(labels, LatencyBuckets());
  m.compute = &compute_.Add(labels, LatencyBuckets());
  m.batch_size = &batch_size_.Add(labels, BatchBuckets());
  m.queue_depth = &queue_depth_.Add(labels);
  m.ready = &model_ready_.Add(labels);
  m.ttft = &ttft_.Add(labels, LatencyBuckets());
  m.time_per_token = &time_per_token_.Add(labels, LatencyBuckets());
  m.generation = &generation_.Add(labels, LatencyBuckets());
  m.prompt_tokens = &prompt_tokens_.Add(labels);
  m.generated_tokens = &generated_tokens_.Add(labels);
  m.running = &running_.Add(labels);
  m.waiting = &waiting_.Add(labels);
  m.cache_bytes = &cache_bytes_.Add(labels);
  m.cache_budget = &cache_budget_.Add(labels);
  m.cache_slots_used = &cache_slots_used_.Add(labels);
  return m;
}

void ServerMetrics::RegisterModel(const std::string& model, bool ready,
                                  std::optional<model::ModelFamily> family, int64_t version) {
  if (family) {
    standard_->Register(model,
                        *family == model::ModelFamily::kLanguageModel ? StandardMetrics::Kind::kLanguage
                                                                      : StandardMetrics::Kind::kVision,
                        version);
  }
  // Rejection counters exist from the start at 0, so rate() and alerts see them before the
  // first rejection.
  for (const char* reason : {"queue_full", "deadline", "cancelled", "unavailable"}) {
    rejections_.Add({{"model", model}, {"reason", reason}});
  }
  absl::MutexLock lock(&mu_);
  Model(model).ready->Set(ready ? 1 : 0);
}

void ServerMetrics::RecordModelLifecycle(const std::string& model, int64_t version, const std::string& action,
                                        const std::string& outcome, absl::Duration duration) {
  model_loads_.Add({{"model", model}, {"version", absl::StrCat(version)}, {"action", action}, {"outcome", outcome}})
      .Increment();
  // Loads take seconds to minutes: the latency buckets' top (60 s) and a few beyond it.
  static const Buckets kLoadBuckets = {0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600};
  model_load_duration_.Add({{"model", model}, {"action", action}, {"outcome", outcome}}, kLoadBuckets)
      .Observe(Seconds(duration));
}

void ServerMetrics::RecordWarmup(const std::string& model, absl::Duration duration) {
  warmup_duration_.Add({{"model", model}}).Set(Seconds(duration));
}

void ServerMetrics::SetModelReady(const std::string& model, bool ready) {
  absl::MutexLock lock(&mu_);
  Model(model).ready->Set(ready ? 1 : 0);
}

void ServerMetrics::RecordPrecision(const std::string& model, const std::string& device,
                                    const std::string& dtype, const std::string& source) {
  model_precision_.Add({{"model", model}, {"device", device}, {"dtype", dtype}, {"source", source}}).Set(1);
}

void ServerMetrics::RecordRequest(const std::string& model, const std::string& rpc,
                                  const std::string& protocol, const std::string& code,
                                  absl::Duration duration) {
  // Family::Add returns the existing series for a known label set.
  requests_.Add({{"model", model}, {"rpc", rpc}, {"protocol", protocol}, {"code", code}}).Increment();
  request_duration_.Add({{"model", model}, {"rpc", rpc}, {"protocol", protocol}}, LatencyBuckets()).Observe(Seconds(duration));
}

void ServerMetrics::RecordRequest(const std::string& model, const std::string& rpc,
                                  const std::string& protocol, absl::StatusCode code,
                                  absl::Duration duration) {
  RecordRequest(model, rpc, protocol, absl::StatusCodeToString(code), duration);
  standard_->Request(model, code, duration);
}

void ServerMetrics::RecordRejection(const std::string& model, const std::string& reason) {
  rejections_.Add({{"model", model}, {"reason", reason}}).Increment();
}

void ServerMetrics::RecordQueueWait(const std::string& model, absl::Duration wait) {
  absl::MutexLock lock(&mu_);
  Model(model).queue_wait->Observe(Seconds(wait));
}

void ServerMetrics::RecordServeTiming(const std::string& model, absl::Duration queue,
                                      absl::Duration preprocess, absl::Duration compute) {
  RecordQueueWait(model, queue);
  standard_->ServeTiming(model, queue, preprocess, compute);
}

void ServerMetrics::RecordBatch(const std::string& model, int instance, int batch_size,
                                absl::Duration compute) {
  absl::MutexLock lock(&mu_);
  PerModel& m = Model(model);
  m.batch_size->Observe(batch_size);
  m.compute->Observe(Seconds(compute));
  auto key = std::make_pair(model, instance);
  auto it = instances_.find(key);
  if (it == instances_.end()) {
    const prometheus::Labels labels = {{"model", model}, {"instance", std::to_string(instance)}};
    it = instances_.emplace(key, PerInstance{&instance_batches_.Add(labels), &instance_busy_.Add(labels)}).first;
  }
  it->second.batches->Increment();
  it->second.busy_seconds->Increment(Seconds(compute));
  standard_->Batch(model, batch_size);
}

void ServerMetrics::SetQueueDepth(const std::string& model, int items) {
  absl::MutexLock lock(&mu_);
  Model(model).queue_depth->Set(items);
  standard_->Pending(model, items);
}

void ServerMetrics::AddInFlight(const std::string& model, const std::string& rpc,
                                const std::string& protocol, int delta) {
  in_flight_.Add({{"model", model}, {"rpc", rpc}, {"protocol", protocol}}).Increment(delta);
}

void ServerMetrics::RecordGeneration(const std::string& model, int prompt_tokens, int generated_tokens,
                                     absl::Duration time_to_first_token, absl::Duration total,
                                     bool completed) {
  absl::MutexLock lock(&mu_);
  PerModel& m = Model(model);
  m.prompt_tokens->Increment(prompt_tokens);
  m.generated_tokens->Increment(generated_tokens);
  standard_->Generation(model, prompt_tokens, generated_tokens, time_to_first_token, total, completed);
  if (!completed) return;
  m.generation->Observe(Seconds(total));
  if (generated_tokens > 0) m.ttft->Observe(Seconds(time_to_first_token));
  if (generated_tokens > 1) {
    m.time_per_token->Observe(Seconds(total - time_to_first_token) / (generated_tokens - 1));
  }
}

void ServerMetrics::SetGenerationLoad(const std::string& model, int running, int waiting,
                                      int64_t cache_bytes, int64_t cache_budget_bytes, int slots_used,
                                      int slots, int slot_tokens) {
  absl::MutexLock lock(&mu_);
  PerModel& m = Model(model);
  m.running->Set(running);
  m.waiting->Set(waiting);
  m.cache_bytes->Set(static_cast<double>(cache_bytes));
  m.cache_budget->Set(static_cast<double>(cache_budget_bytes));
  m.cache_slots_used->Set(slots_used);
  standard_->GenerationLoad(model, running, waiting, slots, slots_used, slot_tokens);
}

void ServerMetrics::RecordAttentionStats(const std::string& model,
                                         const std::vector<model::LayerStats>& layers) {
  absl::MutexLock lock(&mu_);
  for (const model::LayerStats& layer : layers) {
    auto key = std::make_pair(model, layer.layer);
    auto it = layers_.find(key);
    if (it == layers_.end()) {
      const prometheus::Labels labels = {{"model", model}, {"layer", std::to_string(layer.layer)}};
      PerLayer l;
      l.metric = &attention_metric_.Add(labels, MetricBuckets());
      l.effective_dimension = &effective_dimension_.Add(labels, UnitBuckets());
      l.cosine = &token_cosine_.Add(labels, CosineBuckets());
      it = layers_.emplace(key, l).first;
    }
    it->second.cosine->Observe(layer.mean_token_cosine_similarity);
    if (!layer.elliptical) continue;
    std::vector<double> counts(layer.metric_histogram.begin(), layer.metric_histogram.end());
    counts.push_back(0);  // the +Inf bucket: m never exceeds 1
    it->second.metric->ObserveMultiple(counts, layer.metric_sum);
    for (const model::HeadMetricStats& head : layer.heads) {
      it->second.effective_dimension->Observe(head.effective_dimension);
    }
  }
}

void ServerMetrics::SetProcess(int64_t resident_bytes, int64_t device_bytes) {
  resident_bytes_.Set(static_cast<double>(resident_bytes));
  device_bytes_.Set(static_cast<double>(device_bytes));
}

}  // namespace elliptical::server
