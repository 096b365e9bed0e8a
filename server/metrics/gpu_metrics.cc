#include "server/metrics/gpu_metrics.h"

#include <dlfcn.h>

#include "absl/strings/str_cat.h"

namespace elliptical::server {

// NVML's C API as far as used here (nvml.h, stable since NVML 5): every call returns
// nvmlReturn_t, 0 being NVML_SUCCESS.
namespace {
using nvmlReturn_t = int;
using nvmlDevice_t = void*;
struct nvmlUtilization_t {
  unsigned int gpu;
  unsigned int memory;
};
struct nvmlMemory_t {
  unsigned long long total;
  unsigned long long free;
  unsigned long long used;
};
constexpr unsigned kUuidBytes = 96;  // NVML_DEVICE_UUID_V2_BUFFER_SIZE
}  // namespace

struct Nvml::Api {
  nvmlReturn_t (*init)() = nullptr;
  nvmlReturn_t (*shutdown)() = nullptr;
  const char* (*error_string)(nvmlReturn_t) = nullptr;
  nvmlReturn_t (*count)(unsigned int*) = nullptr;
  nvmlReturn_t (*handle_by_index)(unsigned int, nvmlDevice_t*) = nullptr;
  nvmlReturn_t (*uuid)(nvmlDevice_t, char*, unsigned int) = nullptr;
  nvmlReturn_t (*utilization)(nvmlDevice_t, nvmlUtilization_t*) = nullptr;
  nvmlReturn_t (*memory)(nvmlDevice_t, nvmlMemory_t*) = nullptr;

  std::string Error(nvmlReturn_t r) const {
    const char* text = error_string ? error_string(r) : nullptr;
    return text ? std::string(text) : absl::StrCat("NVML error ", r);
  }
};

absl::StatusOr<std::unique_ptr<Nvml>> Nvml::Load(const std::string& library) {
  void* handle = dlopen(library.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!handle) {
    const char* why = dlerror();
    return absl::UnavailableError(
        absl::StrCat("cannot load ", library, " (the NVIDIA driver's NVML): ", why ? why : "not found"));
  }
  auto api = std::make_unique<Api>();
  std::string missing;
  auto resolve = [&](auto& fn, const char* name) {
    fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(dlsym(handle, name));
    if (!fn) absl::StrAppend(&missing, missing.empty() ? "" : ", ", name);
  };
  resolve(api->init, "nvmlInit_v2");
  resolve(api->shutdown, "nvmlShutdown");
  resolve(api->error_string, "nvmlErrorString");
  resolve(api->count, "nvmlDeviceGetCount_v2");
  resolve(api->handle_by_index, "nvmlDeviceGetHandleByIndex_v2");
  resolve(api->uuid, "nvmlDeviceGetUUID");
  resolve(api->utilization, "nvmlDeviceGetUtilizationRates");
  resolve(api->memory, "nvmlDeviceGetMemoryInfo");
  if (!missing.empty()) {
    dlclose(handle);
    return absl::UnavailableError(absl::StrCat(library, " lacks ", missing));
  }
  if (nvmlReturn_t r = api->init(); r != 0) {
    const std::string why = api->Error(r);
    dlclose(handle);
    return absl::UnavailableError(absl::StrCat("nvmlInit failed: ", why));
  }
  return std::unique_ptr<Nvml>(new Nvml(handle, std::move(api)));
}

Nvml::Nvml(void* handle, std::unique_ptr<Api> api) : handle_(handle), api_(std::move(api)) {
  unsigned int count = 0;
  if (api_->count(&count) != 0) count = 0;
  for (unsigned int i = 0; i < count; ++i) {
    nvmlDevice_t device = nullptr;
    if (api_->handle_by_index(i, &device) == 0) devices_.push_back(device);
  }
}

Nvml::~Nvml() {
  api_->shutdown();
  dlclose(handle_);
}

std::vector<GpuSample> Nvml::Sample() {
  std::vector<GpuSample> out;
  for (void* device : devices_) {
    GpuSample s;
    char uuid[kUuidBytes] = {};
    nvmlUtilization_t util{};
    nvmlMemory_t memory{};
    if (api_->uuid(device, uuid, kUuidBytes) != 0 || api_->utilization(device, &util) != 0 ||
        api_->memory(device, &memory) != 0) {
      continue;
    }
    s.uuid = uuid;
    s.utilization = util.gpu / 100.0;
    s.memory_used = static_cast<int64_t>(memory.used);
    s.memory_total = static_cast<int64_t>(memory.total);
    out.push_back(std::move(s));
  }
  return out;
}

GpuMetrics::GpuMetrics(prometheus::Registry& registry, absl::StatusOr<std::unique_ptr<Nvml>> nvml) {
  if (!nvml.ok()) {
    summary_ = absl::StrCat("GPU metrics off: ", nvml.status().message());
    return;
  }
  if ((*nvml)->device_count() == 0) {
    summary_ = "GPU metrics off: NVML reports no GPU";
    return;
  }
  nvml_ = *std::move(nvml);
  summary_ = absl::StrCat("GPU metrics on: ", nvml_->device_count(), " GPU(s) through NVML");
  utilization_ = &prometheus::BuildGauge()
                      .Name("nv_gpu_utilization")
                      .Help("GPU utilization rate [0.0 - 1.0)")
                      .Register(registry);
  used_ = &prometheus::BuildGauge()
               .Name("nv_gpu_memory_used_bytes")
               .Help("GPU used memory, in bytes")
               .Register(registry);
  total_ = &prometheus::BuildGauge()
                .Name("nv_gpu_memory_total_bytes")
                .Help("GPU total memory, in bytes")
                .Register(registry);
}

void GpuMetrics::Sample() {
  if (!nvml_) return;
  std::lock_guard<std::mutex> lock(mu_);
  for (const GpuSample& s : nvml_->Sample()) {
    Series* series = nullptr;
    for (auto& [uuid, existing] : series_) {
      if (uuid == s.uuid) series = &existing;
    }
    if (!series) {
      const prometheus::Labels labels = {{"gpu_uuid", s.uuid}};
      series_.emplace_back(s.uuid, Series{&utilization_->Add(labels), &used_->Add(labels), &total_->Add(labels)});
      series = &series_.back().second;
    }
    series->utilization->Set(s.utilization);
    series->used->Set(static_cast<double>(s.memory_used));
    series->total->Set(static_cast<double>(s.memory_total));
  }
}

}  // namespace elliptical::server
