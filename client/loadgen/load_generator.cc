#include "client/loadgen/load_generator.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <iostream>
#include <mutex>
#include <random>
#include <thread>

#include <nlohmann/json.hpp>

#include "absl/strings/str_format.h"

namespace elliptical::loadgen {
namespace {

using Clock = std::chrono::steady_clock;

struct Sample {
  Clock::time_point start, end;
  grpc::StatusCode code = grpc::StatusCode::OK;
  std::string message;  // the status message of a failed call
  double ttft_s = 0;
  int tokens = 0;
  v1::ServerTiming timing;  // Classify and Segment: what the server says it spent
};

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

double Percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[static_cast<size_t>(q * (v.size() - 1) + 0.5)];
}

std::string CodeName(grpc::StatusCode code) {
  static const char* const kNames[] = {"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT",
                                       "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS",
                                       "PERMISSION_DENIED", "RESOURCE_EXHAUSTED",
                                       "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
                                       "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
                                       "UNAUTHENTICATED"};
  const int i = static_cast<int>(code);
  return i >= 0 && i < 17 ? kNames[i] : "UNKNOWN";
}

// One call of the configured RPC; `start` is when it was meant to be sent.
Sample Call(v1::InferenceService::Stub* stub, const LoadOptions& o, Clock::time_point start) {
  Sample s;
  s.start = start;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::milliseconds(static_cast<int64_t>(o.timeout_s * 1000)));
  grpc::Status status;
  if (o.rpc == "generate") {
    v1::GenerateRequest r;
    r.set_model_name(o.model);
    r.set_prompt(o.prompt);
    r.set_max_new_tokens(o.max_new_tokens);
    r.set_coalesce_tokens(true);  // counted from `tokens` below
    auto reader = stub->Generate(&context, r);
    v1::GenerateResponse m;
    while (reader->Read(&m)) {
      if (!m.has_token() && m.tokens_size() == 0) continue;
      if (s.tokens == 0) s.ttft_s = Seconds(Clock::now() - start);
      s.tokens += std::max(1, m.tokens_size());
    }
    status = reader->Finish();
  } else if (o.rpc == "segment") {
    v1::SegmentRequest r;
    r.set_model_name(o.model);
    r.add_images()->set_encoded(o.image_bytes);
    v1::SegmentResponse response;
    status = stub->Segment(&context, r, &response);
    s.timing = response.timing();
  } else {
    v1::ClassifyRequest r;
    r.set_model_name(o.model);
    r.add_images()->set_encoded(o.image_bytes);
    v1::ClassifyResponse response;
    status = stub->Classify(&context, r, &response);
    s.timing = response.timing();
  }
  s.end = Clock::now();
  s.code = status.error_code();
  if (!status.ok()) s.message = status.error_message();
  return s;
}

// Collects samples; a request counts when it was sent inside the measured window.
class Recorder {
 public:
  Recorder(Clock::time_point measure_from, const LoadOptions& o) : from_(measure_from), o_(o) {}

  void Add(const Sample& s) {
    std::lock_guard<std::mutex> lock(mu_);
    ++sent_;
    if (s.start < from_) return;
    samples_.push_back(s);
  }
  // Measured requests so far and whether the stop condition holds.
  bool Done(Clock::time_point now) {
    std::lock_guard<std::mutex> lock(mu_);
    if (o_.requests > 0) return static_cast<int64_t>(samples_.size()) >= o_.requests;
    return now >= from_ + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o_.duration_s));
  }
  void Progress(Clock::time_point now) {
    std::lock_guard<std::mutex> lock(mu_);
    int64_t ok = 0, bad = 0;
    std::vector<double> lat;
    for (const Sample& s : samples_) {
      if (s.code == grpc::StatusCode::OK) {
        ++ok;
        lat.push_back(Seconds(s.end - s.start));
      } else {
        ++bad;
      }
    }
    const double t = Seconds(now - from_);
    std::fprintf(stderr, "\r[loadgen] %s %5.1f s  %6lld ok  %4lld errors  %8.1f req/s  p50 %7.2f ms   ",
                 t < 0 ? "warm-up" : "measure", std::max(0.0, t), static_cast<long long>(ok),
                 static_cast<long long>(bad), t > 0 ? ok / t : 0.0, 1e3 * Percentile(lat, 0.5));
    std::fflush(stderr);
  }
  std::vector<Sample> Take() {
    std::lock_guard<std::mutex> lock(mu_);
    return samples_;
  }

 private:
  const Clock::time_point from_;
  const LoadOptions& o_;
  std::mutex mu_;
  int64_t sent_ = 0;
  std::vector<Sample> samples_;
};

// What a report says of the load it describes, measured or not.
LoadReport ReportFor(const LoadOptions& o) {
  LoadReport r;
  r.rpc = o.rpc;
  r.model = o.model;
  r.open_loop = o.open_loop;
  r.concurrency = o.open_loop ? 0 : o.concurrency;
  r.offered_rate = o.open_loop ? o.rate : 0;
  return r;
}

}  // namespace

LoadReport RunLoad(const std::shared_ptr<grpc::Channel>& channel, const LoadOptions& o) {
  if (!channel->WaitForConnected(std::chrono::system_clock::now() +
                                 std::chrono::milliseconds(static_cast<int64_t>(o.timeout_s * 1000)))) {
    LoadReport r = ReportFor(o);
    r.connect_error = absl::StrFormat("no connection to the server within %.0f s (channel state %d)", o.timeout_s,
                                      static_cast<int>(channel->GetState(false)));
    return r;
  }
  const Clock::time_point begin = Clock::now();
  const Clock::time_point measure_from =
      begin + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o.warmup_s));
  Recorder recorder(measure_from, o);
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  // Open loop: requests due to be sent, handed from the dispatcher to the workers.
  std::mutex mu;
  std::condition_variable cv;
  std::deque<Clock::time_point> due;

  if (!o.open_loop) {
    for (int c = 0; c < o.concurrency; ++c) {
      threads.emplace_back([&] {
        auto stub = v1::InferenceService::NewStub(channel);
        // Each client checks the stop condition itself, so no request is sent after it holds
        // and every request the server saw is in the report.
        while (!stop && !recorder.Done(Clock::now())) recorder.Add(Call(stub.get(), o, Clock::now()));
      });
    }
  } else {
    // A dispatcher draws Poisson arrival times; workers send each request at its time (or as
    // soon as one is free, the wait being charged to the request).
    for (int w = 0; w < o.max_in_flight; ++w) {
      threads.emplace_back([&] {
        auto stub = v1::InferenceService::NewStub(channel);
        for (;;) {
          Clock::time_point when;
          {
            std::unique_lock<std::mutex> lock(mu);
            cv.wait(lock, [&] { return stop || !due.empty(); });
            if (due.empty()) return;
            when = due.front();
            due.pop_front();
          }
          recorder.Add(Call(stub.get(), o, when));
        }
      });
    }
    threads.emplace_back([&] {
      std::mt19937_64 rng(o.seed);
      std::exponential_distribution<double> gap(o.rate);
      Clock::time_point next = Clock::now();
      while (!stop && !recorder.Done(Clock::now())) {
        next += std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(gap(rng)));
        std::this_thread::sleep_until(next);
        {
          std::lock_guard<std::mutex> lock(mu);
          due.push_back(next);
        }
        cv.notify_one();
      }
      cv.notify_all();
    });
  }

  Clock::time_point last_progress = begin;
  while (!recorder.Done(Clock::now())) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    if (o.progress && Clock::now() - last_progress > std::chrono::seconds(1)) {
      last_progress = Clock::now();
      recorder.Progress(last_progress);
    }
  }
  {
    std::lock_guard<std::mutex> lock(mu);
    stop = true;
  }
  cv.notify_all();  // idle open-loop workers wake, send what is still due, and exit
  for (auto& t : threads) t.join();
  if (o.progress) std::fprintf(stderr, "\n");
  const std::vector<Sample> samples = recorder.Take();
  // The window ends with the last answer: requests in flight when the stop condition held are
  // part of the report (the server counted them too).
  Clock::time_point measure_end = measure_from;
  for (const Sample& s : samples) measure_end = std::max(measure_end, s.end);

  LoadReport r = ReportFor(o);
  r.seconds = Seconds(measure_end - measure_from);
  std::vector<double> latency, ttft, tpot;
  int64_t tokens = 0;
  double decode = 0, preprocess = 0, queue = 0, compute = 0, batch = 0;
  for (const Sample& s : samples) {
    if (s.code != grpc::StatusCode::OK) {
      const std::string code = CodeName(s.code);
      if (r.errors[code]++ == 0) r.error_messages[code] = s.message;
      continue;
    }
    ++r.ok;
    const double l = Seconds(s.end - s.start);
    latency.push_back(l);
    decode += s.timing.decode_us();
    preprocess += s.timing.preprocess_us();
    queue += s.timing.queue_us();
    compute += s.timing.compute_us();
    batch += s.timing.batch_size();
    if (o.rpc == "generate" && s.tokens > 0) {
      tokens += s.tokens;
      ttft.push_back(s.ttft_s);
      if (s.tokens > 1) tpot.push_back((l - s.ttft_s) / (s.tokens - 1));
    }
  }
  r.throughput = r.seconds > 0 ? r.ok / r.seconds : 0;
  if (o.rpc != "generate" && r.ok > 0) {
    const double n = static_cast<double>(r.ok);
    r.server_decode_ms = decode / n / 1e3;
    r.server_preprocess_ms = preprocess / n / 1e3;
    r.server_queue_ms = queue / n / 1e3;
    r.server_compute_ms = compute / n / 1e3;
    r.mean_batch_size = batch / n;
    r.mean_latency_ms = 0;
    for (double l : latency) r.mean_latency_ms += 1e3 * l / n;
  }
  r.p50_ms = 1e3 * Percentile(latency, 0.5);
  r.p90_ms = 1e3 * Percentile(latency, 0.9);
  r.p99_ms = 1e3 * Percentile(latency, 0.99);
  r.max_ms = latency.empty() ? 0 : 1e3 * *std::max_element(latency.begin(), latency.end());
  if (o.rpc == "generate") {
    r.tokens_per_second = r.seconds > 0 ? tokens / r.seconds : 0;
    r.ttft_p50_ms = 1e3 * Percentile(ttft, 0.5);
    r.ttft_p99_ms = 1e3 * Percentile(ttft, 0.99);
    r.tpot_p50_ms = 1e3 * Percentile(tpot, 0.5);
  }
  return r;
}

std::string ToJson(const LoadReport& r) {
  nlohmann::json j = {{"rpc", r.rpc},
                      {"model", r.model},
                      {"mode", r.open_loop ? "open" : "closed"},
                      {"concurrency", r.concurrency},
                      {"offered_rate", r.offered_rate},
                      {"seconds", r.seconds},
                      {"ok", r.ok},
                      {"errors", r.errors},
                      {"error_messages", r.error_messages},
                      {"connect_error", r.connect_error},
                      {"throughput", r.throughput},
                      {"latency_ms", {{"p50", r.p50_ms}, {"p90", r.p90_ms}, {"p99", r.p99_ms}, {"max", r.max_ms}}}};
  if (r.rpc != "generate") {
    // Means per successful request; latency minus the server's stages is the rest (gRPC, the
    // response, the network, the client).
    j["server_ms"] = {{"decode", r.server_decode_ms},     {"preprocess", r.server_preprocess_ms},
                      {"queue", r.server_queue_ms},       {"compute", r.server_compute_ms},
                      {"mean_latency", r.mean_latency_ms}, {"mean_batch_size", r.mean_batch_size}};
  }
  if (r.rpc == "generate") {
    j["tokens_per_second"] = r.tokens_per_second;
    j["ttft_ms"] = {{"p50", r.ttft_p50_ms}, {"p99", r.ttft_p99_ms}};
    j["tpot_ms"] = {{"p50", r.tpot_p50_ms}};
  }
  return j.dump();
}

std::string Summary(const LoadReport& r) {
  std::string errors;
  for (const auto& [code, n] : r.errors) errors += absl::StrFormat(" %s:%d", code, n);
  std::string out = absl::StrFormat(
      "%s %s, %s: %lld ok in %.1f s = %.1f req/s; latency p50 %.2f  p90 %.2f  p99 %.2f  max %.2f ms; errors%s\n",
      r.rpc, r.model,
      r.open_loop ? absl::StrFormat("open loop %.1f req/s offered", r.offered_rate)
                  : absl::StrFormat("closed loop, %d clients", r.concurrency),
      static_cast<long long>(r.ok), r.seconds, r.throughput, r.p50_ms, r.p90_ms, r.p99_ms, r.max_ms,
      errors.empty() ? " none" : errors);
  for (const auto& [code, message] : r.error_messages) out += absl::StrFormat("  first %s: %s\n", code, message);
  if (!r.connect_error.empty()) out += "  " + r.connect_error + "\n";
  if (r.rpc == "generate") {
    out += absl::StrFormat("  %.0f tokens/s; time to first token p50 %.2f  p99 %.2f ms; per output token p50 %.2f ms\n",
                           r.tokens_per_second, r.ttft_p50_ms, r.ttft_p99_ms, r.tpot_p50_ms);
  }
  return out;
}

}  // namespace elliptical::loadgen
