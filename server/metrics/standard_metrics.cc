#include "server/metrics/standard_metrics.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace elliptical::server {
namespace {

using prometheus::BuildCounter;
using prometheus::BuildGauge;
using prometheus::BuildHistogram;

constexpr const char* kFailureReasons[] = {"REJECTED", "CANCELED", "BACKEND", "OTHER"};

double Micros(absl::Duration d) { return absl::ToDoubleMicroseconds(d); }

}  // namespace

StandardMetrics::StandardMetrics(prometheus::Registry& r, prometheus::Histogram::BucketBoundaries latency_buckets)
    : latency_buckets_(std::move(latency_buckets)),
      success_(BuildCounter().Name("nv_inference_request_success").Help("Vision calls that succeeded (Triton's name; = elliptical_requests_total{code=\"OK\"}).").Register(r)),
      failure_(BuildCounter().Name("nv_inference_request_failure").Help("Vision calls that failed, by Triton's reason: REJECTED (queue full, deadline), CANCELED, BACKEND (internal), OTHER.").Register(r)),
      inference_count_(BuildCounter().Name("nv_inference_count").Help("Images computed (Triton's inference count: a batch of n counts n).").Register(r)),
      exec_count_(BuildCounter().Name("nv_inference_exec_count").Help("Batches computed (Triton's execution count).").Register(r)),
      pending_(BuildGauge().Name("nv_inference_pending_request_count").Help("Images waiting in the model's batching queue (= elliptical_queue_items), read at every scrape.").Register(r)),
      request_us_(BuildCounter().Name("nv_inference_request_duration_us").Help("Cumulative end-to-end time of successful vision calls, microseconds.").Register(r)),
      queue_us_(BuildCounter().Name("nv_inference_queue_duration_us").Help("Cumulative time vision calls waited in the batching queue, microseconds.").Register(r)),
      compute_input_us_(BuildCounter().Name("nv_inference_compute_input_duration_us").Help("Cumulative preprocessing time of vision calls (resize, normalise), microseconds.").Register(r)),
      compute_infer_us_(BuildCounter().Name("nv_inference_compute_infer_duration_us").Help("Cumulative time of the batches each vision call ran in, microseconds.").Register(r)),
      running_(BuildGauge().Name("vllm:num_requests_running").Help("Sequences in the running decode batch (= elliptical_running_sequences), read at every scrape.").Register(r)),
      waiting_(BuildGauge().Name("vllm:num_requests_waiting").Help("Sequences waiting for admission (= elliptical_waiting_sequences), read at every scrape.").Register(r)),
      cache_usage_(BuildGauge().Name("vllm:kv_cache_usage_perc").Help("Fraction (0..1) of the KV cache's slots held by running sequences.").Register(r)),
      ttft_(BuildHistogram().Name("vllm:time_to_first_token_seconds").Help("Completed generations: arrival to first token.").Register(r)),
      inter_token_(BuildHistogram().Name("vllm:inter_token_latency_seconds").Help("Completed generations: time between successive tokens (each gap of a sequence counted at the sequence's mean gap).").Register(r)),
      e2e_(BuildHistogram().Name("vllm:e2e_request_latency_seconds").Help("Completed generations: arrival to last token.").Register(r)),
      prompt_tokens_(BuildCounter().Name("vllm:prompt_tokens_total").Help("Prompt tokens of every generation.").Register(r)),
      generation_tokens_(BuildCounter().Name("vllm:generation_tokens_total").Help("Tokens generated.").Register(r)),
      cache_config_(BuildGauge().Name("vllm:cache_config_info").Help("Always 1; the labels describe the KV cache: num_gpu_blocks slots of block_size tokens (one slot per sequence).").Register(r)) {}

const char* StandardMetrics::FailureReason(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kResourceExhausted:
    case absl::StatusCode::kDeadlineExceeded: return "REJECTED";
    case absl::StatusCode::kCancelled: return "CANCELED";
    case absl::StatusCode::kInternal:
    case absl::StatusCode::kUnknown:
    case absl::StatusCode::kDataLoss: return "BACKEND";
    default: return "OTHER";
  }
}

void StandardMetrics::Register(const std::string& model, Kind kind, int64_t version) {
  absl::MutexLock lock(&mu_);
  if (kind == Kind::kVision) {
    const std::string v_label = absl::StrCat(version);
    auto existing = vision_.find(model);
    if (existing != vision_.end()) {
      if (existing->second.version == v_label) return;
      existing->second.pending->Set(0);  // the previous version's series stop moving
    }
    const prometheus::Labels labels = {{"model", model}, {"version", v_label}};
    Vision& v = vision_[model];
    v.version = v_label;
    v.success = &success_.Add(labels);
    for (const char* reason : kFailureReasons) {
      v.failure[reason] = &failure_.Add({{"model", model}, {"version", v_label}, {"reason", reason}});
    }
    v.inference_count = &inference_count_.Add(labels);
    v.exec_count = &exec_count_.Add(labels);
    v.pending = &pending_.Add(labels);
    v.request_us = &request_us_.Add(labels);
    v.queue_us = &queue_us_.Add(labels);
    v.compute_input_us = &compute_input_us_.Add(labels);
    v.compute_infer_us = &compute_infer_us_.Add(labels);
    return;
  }
  if (language_.count(model)) return;
  const prometheus::Labels labels = {{"model_name", model}};
  Language& l = language_[model];
  l.running = &running_.Add(labels);
  l.waiting = &waiting_.Add(labels);
  l.cache_usage = &cache_usage_.Add(labels);
  l.ttft = &ttft_.Add(labels, latency_buckets_);
  l.inter_token = &inter_token_.Add(labels, latency_buckets_);
  l.e2e = &e2e_.Add(labels, latency_buckets_);
  l.prompt_tokens = &prompt_tokens_.Add(labels);
  l.generation_tokens = &generation_tokens_.Add(labels);
}

StandardMetrics::Vision* StandardMetrics::FindVision(const std::string& model) {
  auto it = vision_.find(model);
  return it == vision_.end() ? nullptr : &it->second;
}

StandardMetrics::Language* StandardMetrics::FindLanguage(const std::string& model) {
  auto it = language_.find(model);
  return it == language_.end() ? nullptr : &it->second;
}

void StandardMetrics::Request(const std::string& model, absl::StatusCode code, absl::Duration duration) {
  absl::MutexLock lock(&mu_);
  Vision* v = FindVision(model);
  if (!v) return;
  if (code == absl::StatusCode::kOk) {
    v->success->Increment();
    v->request_us->Increment(Micros(duration));
  } else {
    v->failure.at(FailureReason(code))->Increment();
  }
}

void StandardMetrics::ServeTiming(const std::string& model, absl::Duration queue, absl::Duration preprocess,
                                  absl::Duration compute) {
  absl::MutexLock lock(&mu_);
  Vision* v = FindVision(model);
  if (!v) return;
  v->queue_us->Increment(Micros(queue));
  v->compute_input_us->Increment(Micros(preprocess));
  v->compute_infer_us->Increment(Micros(compute));
}

void StandardMetrics::Batch(const std::string& model, int batch_size) {
  absl::MutexLock lock(&mu_);
  Vision* v = FindVision(model);
  if (!v) return;
  v->exec_count->Increment();
  v->inference_count->Increment(batch_size);
}

void StandardMetrics::Pending(const std::string& model, int items) {
  absl::MutexLock lock(&mu_);
  if (Vision* v = FindVision(model)) v->pending->Set(items);
}

void StandardMetrics::Generation(const std::string& model, int prompt_tokens, int generated_tokens,
                                 absl::Duration time_to_first_token, absl::Duration total, bool completed) {
  absl::MutexLock lock(&mu_);
  Language* l = FindLanguage(model);
  if (!l) return;
  l->prompt_tokens->Increment(prompt_tokens);
  l->generation_tokens->Increment(generated_tokens);
  if (!completed) return;
  l->e2e->Observe(absl::ToDoubleSeconds(total));
  if (generated_tokens > 0) l->ttft->Observe(absl::ToDoubleSeconds(time_to_first_token));
  if (generated_tokens > 1) {
    // The scheduler reports a sequence's first and last token times, not every gap: its
    // generated_tokens - 1 gaps are counted at their mean, so count and sum are exact (rate of
    // _sum / rate of _count is the true mean gap) and only the spread within a sequence is lost.
    const int gaps = generated_tokens - 1;
    const double decode = absl::ToDoubleSeconds(total - time_to_first_token);
    const double mean = decode / gaps;
    std::vector<double> increments(latency_buckets_.size() + 1, 0);
    const auto bucket = std::find_if(latency_buckets_.begin(), latency_buckets_.end(),
                                     [mean](double bound) { return mean <= bound; });
    increments[bucket - latency_buckets_.begin()] = gaps;
    l->inter_token->ObserveMultiple(increments, decode);
  }
}

void StandardMetrics::GenerationLoad(const std::string& model, int running, int waiting, int slots, int slots_used,
                                     int slot_tokens) {
  absl::MutexLock lock(&mu_);
  Language* l = FindLanguage(model);
  if (!l) return;
  l->running->Set(running);
  l->waiting->Set(waiting);
  // The same ratio as elliptical_kv_cache_reserved_bytes / elliptical_kv_cache_budget_bytes.
  l->cache_usage->Set(slots > 0 ? static_cast<double>(slots_used) / slots : 0);
  if (!l->cache_config && slots > 0) {
    l->cache_config = &cache_config_.Add({{"model_name", model},
                                          {"num_gpu_blocks", std::to_string(slots)},
                                          {"block_size", std::to_string(slot_tokens)}});
    l->cache_config->Set(1);
  }
}

}  // namespace elliptical::server
