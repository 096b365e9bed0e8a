// GPU metrics through NVML opened at run time (server/metrics/gpu_metrics.h): without the library
// (or without a device) the loader says why and no nv_gpu_ series exists.
#include "server/metrics/gpu_metrics.h"

#include <gtest/gtest.h>

#include <iostream>

#include "server/metrics/server_metrics.h"

namespace elliptical::server {
namespace {

TEST(GpuMetrics, LoaderReportsAMissingLibraryAsUnavailable) {
  auto nvml = Nvml::Load("libelliptical-no-such-nvml.so.1");
  ASSERT_FALSE(nvml.ok());
  EXPECT_EQ(nvml.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(nvml.status().message().find("cannot load libelliptical-no-such-nvml.so.1"), std::string::npos)
      << nvml.status();
}

TEST(GpuMetrics, LoaderReportsALibraryWithoutNvmlAsUnavailable) {
  auto nvml = Nvml::Load("libm.so.6");  // loads, but has none of NVML's entry points
  ASSERT_FALSE(nvml.ok());
  EXPECT_EQ(nvml.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(nvml.status().message().find("lacks nvmlInit_v2"), std::string::npos) << nvml.status();
}

TEST(GpuMetrics, NoSeriesAndOneReasonWithoutNvml) {
  auto metrics = ServerMetrics::Unexposed("test");
  GpuMetrics gpu(*metrics->registry(), Nvml::Load("libelliptical-no-such-nvml.so.1"));
  EXPECT_FALSE(gpu.enabled());
  EXPECT_EQ(gpu.summary().rfind("GPU metrics off: cannot load", 0), 0u) << gpu.summary();
  gpu.Sample();
  EXPECT_EQ(metrics->Exposition().find("nv_gpu_"), std::string::npos);
}

// The real library, as the server opens it: on a machine without an NVIDIA driver (this one in
// CI) no series; with one, a series of each name per GPU, labelled by its UUID.
TEST(GpuMetrics, ThisMachine) {
  auto metrics = ServerMetrics::Unexposed("test");
  GpuMetrics gpu(*metrics->registry(), Nvml::Load());
  std::cout << gpu.summary() << "\n";
  gpu.Sample();
  const std::string text = metrics->Exposition();
  if (!gpu.enabled()) {
    EXPECT_EQ(text.find("nv_gpu_"), std::string::npos);
    return;
  }
  for (const char* name : {"nv_gpu_utilization{gpu_uuid=\"GPU-", "nv_gpu_memory_used_bytes{gpu_uuid=\"GPU-",
                           "nv_gpu_memory_total_bytes{gpu_uuid=\"GPU-"}) {
    EXPECT_NE(text.find(name), std::string::npos) << name;
  }
}

}  // namespace
}  // namespace elliptical::server
