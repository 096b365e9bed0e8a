#include "model/api/runtime.h"

#include <dlfcn.h>
#include <malloc.h>

#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/torch.h>

#include "absl/strings/str_cat.h"

namespace elliptical::model {

void SetComputeThreads(int threads) {
  if (threads > 0) torch::set_num_threads(threads);
}

void SetComputeThreadsForThisThread(int threads) {
  if (threads <= 0) return;
  // LibTorch sizes a thread's pool from the process-wide setting on the thread's first parallel
  // call; make that happen now, so the setting below stays this thread's own.
  at::parallel_for(0, 1, 1, [](int64_t, int64_t) {});
  torch::set_num_threads(threads);
}

namespace {

using OmpSetThreads = void (*)(int);
using MklSetThreadsLocal = int (*)(int);

// LibTorch's own OpenMP runtime and the MKL linked into libtorch_cpu, found in the process:
// linking an OpenMP library here would bring a second runtime with its own thread pools.
struct ThreadControls {
  OmpSetThreads omp = reinterpret_cast<OmpSetThreads>(dlsym(RTLD_DEFAULT, "omp_set_num_threads"));
  // MKL's C entry point: its header maps mkl_set_num_threads_local to this name, and the
  // lower-case symbol in the library is the Fortran one, which takes a pointer.
  MklSetThreadsLocal mkl_local =
      reinterpret_cast<MklSetThreadsLocal>(dlsym(RTLD_DEFAULT, "MKL_Set_Num_Threads_Local"));
};

}  // namespace

void SetBatchComputeThreads(int threads) {
  if (threads <= 0) return;
  static const ThreadControls controls;
  if (!controls.omp) {
    torch::set_num_threads(threads);  // a LibTorch built without OpenMP
    return;
  }
  if (torch::get_num_threads() == threads) return;
  controls.omp(threads);
  if (controls.mkl_local) controls.mkl_local(threads);
}

void UseOwnStreamOnThisThread(const std::string& device) {
  try {
    const torch::Device d(device);
    if (!d.is_cuda() || !torch::cuda::is_available()) return;
    const c10::DeviceIndex index = d.has_index() ? d.index() : c10::cuda::current_device();
    c10::cuda::CUDAGuard guard(index);
    c10::cuda::getDefaultCUDAStream(index).synchronize();
    c10::cuda::setCurrentCUDAStream(c10::cuda::getStreamFromPool(/*isHighPriority=*/false, index));
  } catch (const c10::Error&) {
    // The default stream stays current (see the header).
  }
}

std::string RuntimeSummary() {
  const bool cuda = torch::cuda::is_available();
  return absl::StrCat("LibTorch ", TORCH_VERSION, ", ", torch::get_num_threads(),
                      " CPU compute threads, CUDA ",
                      cuda ? absl::StrCat(torch::cuda::device_count(), " device(s)")
                           : std::string("not available"));
}

void TuneCpuAllocator() {
  // 32 MiB is glibc's largest mmap threshold: every smaller tensor comes from the heap; and the
  // heap is trimmed only beyond 512 MiB free at its top.
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 512 << 20);
}

std::string TorchVersion() { return TORCH_VERSION; }

int64_t DeviceMemoryAllocatedBytes() {
  if (!torch::cuda::is_available()) return 0;
  int64_t total = 0;
  for (int64_t d = 0; d < static_cast<int64_t>(torch::cuda::device_count()); ++d) {
    const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(static_cast<c10::DeviceIndex>(d));
    total += stats.allocated_bytes[static_cast<size_t>(c10::CachingAllocator::StatType::AGGREGATE)].current;
  }
  return total;
}

}  // namespace elliptical::model
