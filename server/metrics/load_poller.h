// Samples what no event reports (queue depths, running and waiting sequences, KV-cache use,
// process and device memory) into the metrics' gauges at a fixed period, on its own thread, and
// before every scrape (ServerMetrics::SetRefresh).
#pragma once

#include <memory>
#include <thread>

#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "server/metrics/gpu_metrics.h"
#include "server/metrics/server_metrics.h"
#include "server/repository/model_repository.h"

namespace elliptical::server {

class LoadPoller {
 public:
  // `gpu`: the GPU metrics to sample with the rest (null: none).
  LoadPoller(const ModelRepository* repository, ServerMetrics* metrics, absl::Duration period,
             std::unique_ptr<GpuMetrics> gpu = nullptr);
  ~LoadPoller();  // stops and joins

  // One sample now (the thread calls it every period).
  void Sample();

 private:
  const ModelRepository* const repository_;
  ServerMetrics* const metrics_;
  const absl::Duration period_;
  const std::unique_ptr<GpuMetrics> gpu_;
  absl::Notification stop_;
  std::thread thread_;
};

// Resident set size of this process, from /proc/self/statm; 0 when unreadable.
int64_t ResidentMemoryBytes();

}  // namespace elliptical::server
