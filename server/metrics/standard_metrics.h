// The metric names that routers and autoscalers read without configuration, beside our own
// (docs/metrics.md, "Standard names"): Triton's (KServe v2) for vision models, labelled
// {model, version}, and vLLM's for language models, labelled {model_name}. The gateway's
// endpoint picker, llm-d's router and their autoscalers carry built-in mappings for exactly these
// names and types; tests/integration/standard_metric_names.json lists them with their sources.
//
// ServerMetrics feeds this from the same calls that record our own families, with the same
// observation at the same moment, so the two never disagree. A model gets the series of its kind
// when it is registered; records for a model without a kind (unknown, failed to load) are
// dropped here, as Triton and vLLM export nothing for a model they do not serve.
//
// Thread-safety: every method may be called from any thread.
#pragma once

#include <map>
#include <string>
#include <vector>

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace elliptical::server {

class StandardMetrics {
 public:
  enum class Kind { kVision, kLanguage };

  // `latency_buckets` are our own latency histograms' buckets, so that the vLLM histograms
  // bucket the same observations the same way.
  StandardMetrics(prometheus::Registry& registry, prometheus::Histogram::BucketBoundaries latency_buckets);

  // Creates the model's series of its kind at zero (once; later calls change nothing). Vision
  // series carry Triton's `version` label: the newest version serving, so a load of a new
  // version moves the model's records to new series (the previous version's keep their totals).
  void Register(const std::string& model, Kind kind, int64_t version = 1);

  // Vision: one finished call (success or failure by code; the duration counts for successes,
  // as Triton's request duration does), its queue wait, preprocessing and compute, one batch.
  void Request(const std::string& model, absl::StatusCode code, absl::Duration duration);
  void ServeTiming(const std::string& model, absl::Duration queue, absl::Duration preprocess,
                   absl::Duration compute);
  void Batch(const std::string& model, int batch_size);
  void Pending(const std::string& model, int items);

  // Language: one generation, and the scheduler's state (cache: slots of `slot_tokens` tokens).
  void Generation(const std::string& model, int prompt_tokens, int generated_tokens,
                  absl::Duration time_to_first_token, absl::Duration total, bool completed);
  void GenerationLoad(const std::string& model, int running, int waiting, int slots, int slots_used,
                      int slot_tokens);

  // Triton's failure reason for a call's final code.
  static const char* FailureReason(absl::StatusCode code);

 private:
  struct Vision {
    std::string version;  // the label the pointers below carry
    prometheus::Counter* success = nullptr;
    std::map<std::string, prometheus::Counter*> failure;  // by reason
    prometheus::Counter* inference_count = nullptr;
    prometheus::Counter* exec_count = nullptr;
    prometheus::Gauge* pending = nullptr;
    prometheus::Counter* request_us = nullptr;
    prometheus::Counter* queue_us = nullptr;
    prometheus::Counter* compute_input_us = nullptr;
    prometheus::Counter* compute_infer_us = nullptr;
  };
  struct Language {
    prometheus::Gauge* running = nullptr;
    prometheus::Gauge* waiting = nullptr;
    prometheus::Gauge* cache_usage = nullptr;
    prometheus::Histogram* ttft = nullptr;
    prometheus::Histogram* inter_token = nullptr;
    prometheus::Histogram* e2e = nullptr;
    prometheus::Counter* prompt_tokens = nullptr;
    prometheus::Counter* generation_tokens = nullptr;
    prometheus::Gauge* cache_config = nullptr;  // set once the cache's shape is known
  };

  Vision* FindVision(const std::string& model) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Language* FindLanguage(const std::string& model) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const prometheus::Histogram::BucketBoundaries latency_buckets_;
  // Triton's.
  prometheus::Family<prometheus::Counter>& success_;
  prometheus::Family<prometheus::Counter>& failure_;
  prometheus::Family<prometheus::Counter>& inference_count_;
  prometheus::Family<prometheus::Counter>& exec_count_;
  prometheus::Family<prometheus::Gauge>& pending_;
  prometheus::Family<prometheus::Counter>& request_us_;
  prometheus::Family<prometheus::Counter>& queue_us_;
  prometheus::Family<prometheus::Counter>& compute_input_us_;
  prometheus::Family<prometheus::Counter>& compute_infer_us_;
  // vLLM's.
  prometheus::Family<prometheus::Gauge>& running_;
  prometheus::Family<prometheus::Gauge>& waiting_;
  prometheus::Family<prometheus::Gauge>& cache_usage_;
  prometheus::Family<prometheus::Histogram>& ttft_;
  prometheus::Family<prometheus::Histogram>& inter_token_;
  prometheus::Family<prometheus::Histogram>& e2e_;
  prometheus::Family<prometheus::Counter>& prompt_tokens_;
  prometheus::Family<prometheus::Counter>& generation_tokens_;
  prometheus::Family<prometheus::Gauge>& cache_config_;

  absl::Mutex mu_;
  std::map<std::string, Vision> vision_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, Language> language_ ABSL_GUARDED_BY(mu_);
};

}  // namespace elliptical::server
