#include "server/metrics/load_poller.h"

#include <unistd.h>

#include <fstream>

#include "model/runtime.h"

namespace elliptical::server {

int64_t ResidentMemoryBytes() {
  std::ifstream statm("/proc/self/statm");
  int64_t size = 0, resident = 0;
  if (!(statm >> size >> resident)) return 0;
  return resident * static_cast<int64_t>(sysconf(_SC_PAGESIZE));
}

LoadPoller::LoadPoller(const ModelRepository* repository, ServerMetrics* metrics, absl::Duration period)
    : repository_(repository), metrics_(metrics), period_(period) {
  thread_ = std::thread([this] {
    do {
      Sample();
    } while (!stop_.WaitForNotificationWithTimeout(period_));
  });
}

LoadPoller::~LoadPoller() {
  stop_.Notify();
  thread_.join();
}

void LoadPoller::Sample() {
  for (const ModelRepository::ModelLoad& load : repository_->Loads()) {
    if (load.generation) {
      const GenerationScheduler::Load& g = *load.generation;
      metrics_->SetGenerationLoad(load.name, g.running, g.waiting, g.reserved_cache_bytes,
                                  g.cache_budget_bytes);
    } else {
      metrics_->SetQueueDepth(load.name, load.queued_items);
    }
  }
  metrics_->SetProcess(ResidentMemoryBytes(), model::DeviceMemoryAllocatedBytes());
}

}  // namespace elliptical::server
