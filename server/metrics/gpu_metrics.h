// GPU metrics in Triton's names and labels, read through NVML loaded at run time:
//   nv_gpu_utilization{gpu_uuid}          GPU utilization rate [0.0 - 1.0)
//   nv_gpu_memory_used_bytes{gpu_uuid}    GPU used memory, in bytes
//   nv_gpu_memory_total_bytes{gpu_uuid}   GPU total memory, in bytes
// NVML (libnvidia-ml.so.1, installed with the NVIDIA driver) is opened with dlopen, so neither
// the build nor a CPU machine needs it: without the library, or without a device, there are no
// nv_gpu_ series at all and one log line says why. Sampled with the load gauges (LoadPoller).
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include "absl/status/statusor.h"

namespace elliptical::server {

struct GpuSample {
  std::string uuid;          // NVML's "GPU-xxxxxxxx-..."
  double utilization = 0;    // fraction of the last sample period a kernel ran, [0, 1]
  int64_t memory_used = 0;   // bytes
  int64_t memory_total = 0;  // bytes
};

// The few NVML calls the metrics need, resolved from a dlopen'ed library.
class Nvml {
 public:
  // Opens `library`, resolves the entry points and initialises NVML. Unavailable (with the
  // reason: no library, a symbol missing, nvmlInit failing as it does without a driver) otherwise.
  static absl::StatusOr<std::unique_ptr<Nvml>> Load(const std::string& library = "libnvidia-ml.so.1");
  ~Nvml();  // nvmlShutdown, dlclose
  Nvml(const Nvml&) = delete;
  Nvml& operator=(const Nvml&) = delete;

  int device_count() const { return static_cast<int>(devices_.size()); }
  // One sample per device; a device whose query fails is left out of this sample.
  std::vector<GpuSample> Sample();

 private:
  struct Api;
  Nvml(void* handle, std::unique_ptr<Api> api);
  void* handle_;
  std::unique_ptr<Api> api_;
  std::vector<void*> devices_;  // nvmlDevice_t
};

class GpuMetrics {
 public:
  // With `nvml` null or without devices: no series, and `reason()` says why.
  GpuMetrics(prometheus::Registry& registry, absl::StatusOr<std::unique_ptr<Nvml>> nvml);

  bool enabled() const { return nvml_ != nullptr; }
  // "GPU metrics on: N device(s) through NVML" or "GPU metrics off: <why>", for the log.
  const std::string& summary() const { return summary_; }

  void Sample();  // thread-safe

 private:
  struct Series {
    prometheus::Gauge* utilization;
    prometheus::Gauge* used;
    prometheus::Gauge* total;
  };
  std::mutex mu_;  // Sample() runs on the poller's thread and on scrapes
  std::unique_ptr<Nvml> nvml_;
  std::string summary_;
  prometheus::Family<prometheus::Gauge>* utilization_ = nullptr;
  prometheus::Family<prometheus::Gauge>* used_ = nullptr;
  prometheus::Family<prometheus::Gauge>* total_ = nullptr;
  std::vector<std::pair<std::string, Series>> series_;  // by uuid, made once per device
};

}  // namespace elliptical::server
