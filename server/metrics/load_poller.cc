#include "server/metrics/load_poller.h"

#include <unistd.h>

#include <fstream>

#include "model/api/runtime.h"

namespace elliptical::server {

int64_t ResidentMemoryBytes() {
  std::ifstream statm("/proc/self/statm");
  int64_t size = 0, resident = 0;
  if (!(statm >> size >> resident)) return 0;
  return resident * static_cast<int64_t>(sysconf(_SC_PAGESIZE));
}

LoadPoller::LoadPoller(const ModelRepository* repository, ServerMetrics* metrics, absl::Duration period,
                       std::unique_ptr<GpuMetrics> gpu)
    : repository_(repository), metrics_(metrics), period_(period), gpu_(std::move(gpu)) {
  // Every scrape samples first, so that routers reading the load gauges every few tens of
  // milliseconds see the load of that moment; the thread keeps them fresh between scrapes.
  metrics_->SetRefresh([this] { Sample(); });
  thread_ = std::thread([this] {
    do {
      Sample();
    } while (!stop_.WaitForNotificationWithTimeout(period_));
  });
}

LoadPoller::~LoadPoller() {
  metrics_->SetRefresh(nullptr);  // waits for a scrape's sample in progress
  stop_.Notify();
  thread_.join();
}

void LoadPoller::Sample() {
  for (const ModelRepository::ModelLoad& load : repository_->Loads()) {
    if (const auto& g = load.load.generation) {
      const int64_t reserved =
          g->cache_slots > 0 ? g->cache_bytes_allocated / g->cache_slots * g->cache_slots_used : 0;
      metrics_->SetGenerationLoad(load.name, g->running, g->waiting, reserved, g->cache_bytes_allocated,
                                  g->cache_slots_used, g->cache_slots, g->slot_tokens);
    } else {
      metrics_->SetQueueDepth(load.name, load.load.queued_items);
    }
  }
  metrics_->SetProcess(ResidentMemoryBytes(), model::DeviceMemoryAllocatedBytes());
  if (gpu_) gpu_->Sample();
}

}  // namespace elliptical::server
